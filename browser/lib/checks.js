// What every page must pass in Chromium: no serious or critical accessibility
// violation (axe-core), nothing wider than the screen, and a header that fits.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const AXE = require.resolve('axe-core/axe.min.js');

export const LAPTOP = { width: 1280, height: 900 };
export const PHONE = { width: 390, height: 844 };

/// axe-core on the page as it is: serious and critical violations fail, named.
export async function checkAccessibility(page, where) {
  await page.addScriptTag({ path: AXE });
  const violations = await page.evaluate(async () => {
    // eslint-disable-next-line no-undef
    const result = await axe.run(document, { resultTypes: ['violations'] });
    return result.violations
      .filter((v) => v.impact === 'serious' || v.impact === 'critical')
      .map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(' | ')}`);
  });
  assert.deepEqual(violations, [], `${where}: accessibility violations`);
}

/// The page does not scroll sideways, and the header fits the screen.
export async function checkFits(page, where) {
  const { overflow, header } = await page.evaluate(() => {
    const bar = document.querySelector('header.site').getBoundingClientRect();
    return {
      overflow: document.documentElement.scrollWidth - window.innerWidth,
      header: { left: bar.left, right: bar.right, width: window.innerWidth },
    };
  });
  assert.ok(overflow <= 0, `${where} is ${overflow}px wider than the screen`);
  assert.ok(header.left >= 0 && header.right <= header.width, `${where}: the header does not fit (${JSON.stringify(header)})`);
}

/// Both checks.
export async function checkPage(page, where) {
  await checkFits(page, where);
  await checkAccessibility(page, where);
}

/// Every staged row's status text and ✕ lie within the screen's width.
export async function checkPreviewRows(page, where) {
  const rows = await page.evaluate(() => [...document.querySelectorAll('table.staged tbody tr')].map((tr) => {
    const box = (el) => (el ? el.getBoundingClientRect() : null);
    const status = box(tr.querySelector('td.status'));
    const remove = box(tr.querySelector('button.remove-row'));
    return {
      line: tr.dataset.line,
      status: status && { left: status.left, right: status.right, height: status.height },
      remove: remove && { left: remove.left, right: remove.right },
      height: tr.getBoundingClientRect().height,
      width: window.innerWidth,
    };
  }));
  assert.ok(rows.length > 0, `${where}: no staged rows`);
  for (const row of rows) {
    assert.ok(row.status && row.status.left >= 0 && row.status.right <= row.width, `${where}: line ${row.line}'s status is off screen: ${JSON.stringify(row)}`);
    if (row.remove) {
      assert.ok(row.remove.left >= 0 && row.remove.right <= row.width, `${where}: line ${row.line}'s ✕ is off screen: ${JSON.stringify(row)}`);
    }
  }
  return rows;
}
