// Draws media/icon.png (256×256, the rings of media/icon.svg on the gallery banner colour) with
// node:zlib only, so the Marketplace icon needs no image tool: `node media/make-icon.mjs`.
import { writeFileSync } from 'node:fs';
import { deflateSync } from 'node:zlib';

const N = 256;
const bg = [0x1e, 0x1b, 0x2e];
const fg = [0xb3, 0x8c, 0xff];
const px = Buffer.alloc(N * (N * 4 + 1));
const c = (N - 1) / 2;
const s = N / 24; // the SVG's 24-unit viewBox
const rings = [9, 6, 3].map((r) => r * s);
const half = 1.5 * s * 0.5 * 1.4;
for (let y = 0; y < N; y++) {
  px[y * (N * 4 + 1)] = 0; // PNG filter: none
  for (let x = 0; x < N; x++) {
    // 4×4 supersampling for smooth edges.
    let cover = 0;
    for (let sy = 0; sy < 4; sy++)
      for (let sx = 0; sx < 4; sx++) {
        const dx = x + (sx + 0.5) / 4 - 0.5 - c;
        const dy = y + (sy + 0.5) / 4 - 0.5 - c;
        const d = Math.hypot(dx, dy);
        const onRing = rings.some((r) => Math.abs(d - r) <= half);
        const onStem = Math.abs(dx) <= half && ((dy <= -rings[1] && dy >= -rings[0]) || (dy >= rings[1] && dy <= rings[0]));
        if (onRing || onStem) cover++;
      }
    const a = cover / 16;
    // Rounded-square background.
    const rx = Math.max(0, Math.abs(x - c) - (N / 2 - 40));
    const ry = Math.max(0, Math.abs(y - c) - (N / 2 - 40));
    const inside = Math.hypot(rx, ry) <= 40 ? 255 : 0;
    const o = y * (N * 4 + 1) + 1 + x * 4;
    for (let k = 0; k < 3; k++) px[o + k] = Math.round(bg[k] * (1 - a) + fg[k] * a);
    px[o + 3] = inside;
  }
}
const crcTable = Array.from({ length: 256 }, (_, n) => {
  let v = n;
  for (let k = 0; k < 8; k++) v = v & 1 ? 0xedb88320 ^ (v >>> 1) : v >>> 1;
  return v >>> 0;
});
const crc = (buf) => {
  let v = 0xffffffff;
  for (const b of buf) v = crcTable[(v ^ b) & 0xff] ^ (v >>> 8);
  return (v ^ 0xffffffff) >>> 0;
};
const chunk = (type, data) => {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type), data]);
  const sum = Buffer.alloc(4);
  sum.writeUInt32BE(crc(td));
  return Buffer.concat([len, td, sum]);
};
const ihdr = Buffer.alloc(13);
ihdr.writeUInt32BE(N, 0);
ihdr.writeUInt32BE(N, 4);
ihdr.set([8, 6, 0, 0, 0], 8); // 8-bit RGBA
const png = Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(px)), chunk('IEND', Buffer.alloc(0))]);
writeFileSync(new URL('./icon.png', import.meta.url), png);
console.log(`media/icon.png: ${png.length} bytes`);
