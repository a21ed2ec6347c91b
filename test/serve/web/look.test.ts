/** The pages' colours: every text colour on every background reads at WCAG AA contrast (4.5:1). */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { expect, it } from 'vitest';
import { repoRoot } from '../../support/artifacts.ts';

/** WCAG 2 relative luminance of a #rrggbb colour. */
function luminance(hex: string): number {
  const [r, g, b] = [1, 3, 5].map((at) => {
    const c = parseInt(hex.slice(at, at + 2), 16) / 255;
    return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
  });
  return 0.2126 * r! + 0.7152 * g! + 0.0722 * b!;
}

const contrast = (a: string, b: string) => {
  const [light, dark] = [luminance(a), luminance(b)].sort((x, y) => y - x);
  return (light! + 0.05) / (dark! + 0.05);
};

it('text colours keep a 4.5:1 contrast on the page\'s backgrounds', async () => {
  const css = await readFile(path.join(repoRoot, 'runner/serve/web/public/style.css'), 'utf8');
  const colour = (name: string) => {
    const value = new RegExp(`--${name}: (#[0-9a-f]{6});`).exec(css)?.[1];
    if (!value) throw new Error(`style.css defines no --${name}`);
    return value;
  };
  for (const text of ['ink', 'muted', 'accent', 'ok', 'bad']) {
    for (const background of ['paper', 'soft']) {
      expect(contrast(colour(text), colour(background)), `--${text} on --${background}`).toBeGreaterThanOrEqual(4.5);
    }
  }
  // Buttons: white (--paper) text on the accent and danger colours.
  expect(contrast(colour('paper'), colour('accent'))).toBeGreaterThanOrEqual(4.5);
  expect(contrast(colour('paper'), colour('bad'))).toBeGreaterThanOrEqual(4.5);
  // No other colour sneaks in outside the variables.
  expect(css.replace(/--[a-z]+: #[0-9a-f]{6};/g, '').match(/#[0-9a-f]{3,6}\b/gi)).toBeNull();
});
