// Open the browser client in headless Chromium, upload a digit, classify it
// privately against two running servers, print what the page shows (JSON) and
// save a screenshot.
//
//   node run.mjs PAGE_URL DIGIT_PNG SCREENSHOT_PNG
import { chromium } from "playwright-core";

const [url, digit, shot] = process.argv.slice(2);
if (!shot) {
  console.error("usage: node run.mjs PAGE_URL DIGIT_PNG SCREENSHOT_PNG");
  process.exit(2);
}
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1000, height: 700 } });
  const logs = [];
  page.on("console", (m) => logs.push(`${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => logs.push(`pageerror: ${e.message}`));
  await page.goto(url);
  await page.setInputFiles("#file", digit);
  await page.waitForFunction(() => document.getElementById("status").textContent.includes("28x28"));
  await page.click("#go");
  await page.waitForFunction(() => document.body.dataset.done, null, { timeout: 60000 });
  const out = await page.evaluate(() => ({
    done: document.body.dataset.done,
    status: document.getElementById("status").textContent,
    label: document.getElementById("label").textContent,
    ring: document.getElementById("label").dataset.ring,
    scores: [...document.querySelectorAll("#scores tr")].map((tr) => tr.lastChild.textContent),
    costs: document.getElementById("costs").textContent,
  }));
  await page.screenshot({ path: shot, fullPage: true });
  out.logs = logs;
  console.log(JSON.stringify(out));
} finally {
  await browser.close();
}
