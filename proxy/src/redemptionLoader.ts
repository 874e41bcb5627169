/**
 * Loads the redemption role module (proxy/src/redemption/module.ts, written on
 * the anonymous side) by a computed specifier, so this skeleton builds and runs
 * (issuance-only) in a tree where that module is not there yet.
 *
 * Contract (see appTypes.ts): the module exports
 *   createRedemptionModule(deps: AppDeps, config: RedemptionConfig): Promise<RoleModule>
 *   redemptionConfigSchema: a zod schema of its configuration section.
 */
import type { ZodType } from 'zod';
import type { AppDeps, RoleModule } from './appTypes.js';

export interface RedemptionModuleExports {
  createRedemptionModule(deps: AppDeps, config: unknown): Promise<RoleModule>;
  redemptionConfigSchema: ZodType;
}

export async function loadRedemptionModule(): Promise<RedemptionModuleExports | undefined> {
  const url = new URL('./redemption/module.js', import.meta.url);
  try {
    const mod = (await import(url.href)) as Partial<RedemptionModuleExports>;
    if (typeof mod.createRedemptionModule !== 'function' || !mod.redemptionConfigSchema) {
      throw new Error('redemption/module.js does not export createRedemptionModule and redemptionConfigSchema');
    }
    return mod as RedemptionModuleExports;
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { url?: string };
    if (err.code === 'ERR_MODULE_NOT_FOUND' && String(err.message).includes('redemption/module.js')) return undefined;
    throw e;
  }
}
