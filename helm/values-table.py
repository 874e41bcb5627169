#!/usr/bin/env python3
"""Prints the values table of helm/llmtor/README.md from helm/llmtor/values.yaml (keys, defaults, comments).
   python3 helm/values-table.py   # then paste between the VALUES-TABLE markers of the README
operator/test/helmChart.test.ts checks that the README lists every value."""
import os
os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), 'llmtor'))
import yaml,re,json
lines=open('values.yaml').read().split('\n')
v=yaml.safe_load(open('values.yaml'))
LEAF={'resources','probes','persistence_x','spec','config','lease','backoff','service','pdb','tlsCa','passwordSecret','sentinelPasswordSecret'}
rows=[]; stack=[]; pending=[]; skip_ind=None
for ln in lines:
    if not ln.strip(): pending=[]; continue
    m=re.match(r'^(\s*)#\s?(.*)$',ln)
    if m:
        if skip_ind is not None and len(m.group(1))>skip_ind: continue
        pending.append(m.group(2)); continue
    m=re.match(r'^(\s*)([A-Za-z0-9_]+):\s*(.*)$',ln)
    if not m: pending=[]; continue
    ind=len(m.group(1)); key=m.group(2); rest=m.group(3)
    if skip_ind is not None:
        if ind>skip_ind: continue
        skip_ind=None
    while stack and stack[-1][0]>=ind: stack.pop()
    path=[k for _,k in stack]+[key]
    trailing=''
    if '#' in rest:
        i=rest.index('#'); trailing=rest[i:].lstrip(' #'); rest=rest[:i].strip()
    desc=' '.join(pending+([trailing] if trailing else [])).strip()
    pending=[]
    node=v
    for k in path: node=node[k]
    if isinstance(node,dict) and key in LEAF:
        rows.append(('.'.join(path), json.dumps(node,separators=(', ',': ')), desc))
        if rest=='': skip_ind=ind
        continue
    if isinstance(node,dict) and rest=='':
        stack.append((ind,key))
        if desc: rows.append(('.'.join(path), '', desc))
        continue
    if isinstance(node,dict) and node and rest.startswith('{'):
        for n,(k,val) in enumerate(node.items()):
            rows.append(('.'.join(path+[k]), json.dumps(val), desc if n==0 else ''))
        continue
    rows.append(('.'.join(path), json.dumps(node), desc))
print('| Key | Default | Description |')
print('|-----|---------|-------------|')
for k,d,desc in rows:
    desc=desc.replace('|','\\|'); d=d.replace('|','\\|')
    print(f'| `{k}` | {("`"+d+"`") if d else ""} | {desc} |')
