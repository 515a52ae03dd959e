// Open the browser client in headless Chromium, upload a digit, classify it
// privately against two running servers, print what the page shows (JSON) and
// save a screenshot.
//
//   node run.mjs PAGE_URL DIGIT_PNG SCREENSHOT_PNG
//
// PIN_CERTS=a.pem,b.pem: for an https:// page, the browser accepts exactly
// these servers' certificates (their public keys pinned with Chromium's
// --ignore-certificate-errors-spki-list, the way a test trusts a private CA
// without installing it); any other certificate still fails.
import { chromium } from "playwright-core";
import { X509Certificate, createHash } from "node:crypto";
import { readFileSync } from "node:fs";

const [url, digit, shot] = process.argv.slice(2);
if (!shot) {
  console.error("usage: node run.mjs PAGE_URL DIGIT_PNG SCREENSHOT_PNG");
  process.exit(2);
}
const args = ["--no-sandbox"];
if (process.env.PIN_CERTS) {
  const pins = process.env.PIN_CERTS.split(",").map((f) => {
    const spki = new X509Certificate(readFileSync(f)).publicKey.export({ type: "spki", format: "der" });
    return createHash("sha256").update(spki).digest("base64");
  });
  args.push(`--ignore-certificate-errors-spki-list=${pins.join(",")}`);
}
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args,
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
