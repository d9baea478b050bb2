// Drives the dashboard in headless Chromium (Debian's /usr/bin/chromium, no download):
// the page loads through the load balancer, subscribes, shows a published message, and
// after the node serving it is stopped, reconnects through the balancer to the other
// node, resubscribes and shows the next message.
//
// usage: node dashboard.e2e.mjs <balancer-port> <redis-port> <node-id>=<pid> ...
import { chromium } from "playwright-core";
import net from "node:net";

const [lbPort, redisPort, ...nodeArgs] = process.argv.slice(2);
const pids = Object.fromEntries(nodeArgs.map((a) => a.split("=")).map(([k, v]) => [k, +v]));

function publish(channel, payload) {
  return new Promise((resolve, reject) => {
    const s = net.connect(+redisPort, "127.0.0.1", () => {
      const args = ["PUBLISH", channel, payload];
      s.write(`*${args.length}\r\n` + args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join(""));
    });
    s.on("data", (d) => { s.end(); resolve(d.toString()); });
    s.on("error", reject);
  });
}

const step = (name) => console.error("step: " + name);
const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
let ok = false;
try {
  const page = await browser.newPage();
  page.on("pageerror", (e) => console.error("page error: " + e.message));
  step("load");
  await page.goto(`http://127.0.0.1:${lbPort}/dashboard`);
  await page.waitForFunction(() => document.getElementById("status").textContent === "connected");
  const first = await page.evaluate(() => window.wsgwDashboard.node);

  step("subscribe");
  await page.fill("#channels", "market:tick:*");
  await page.click("#subscribe");
  await page.waitForFunction(() => document.querySelector("#log tbody").textContent.includes("(subscribed)"));

  step("message");
  await publish("market:tick:AAPL", JSON.stringify({ bid: 189.1, n: 1 }));
  await page.waitForFunction(() => document.querySelector("#log tbody").textContent.includes('"n":1'));

  step("failover from " + first);
  process.kill(pids[first], "SIGTERM");
  await page.waitForFunction((old) => window.wsgwDashboard.reconnects >= 1 &&
      document.getElementById("status").textContent === "connected" &&
      window.wsgwDashboard.node && window.wsgwDashboard.node !== old, first, { timeout: 20000 });
  const second = await page.evaluate(() => window.wsgwDashboard.node);
  // resubscribed by the page itself after the welcome
  await page.waitForFunction(() => window.wsgwDashboard.lastAck === "resubscribe");
  await publish("market:tick:MSFT", JSON.stringify({ bid: 410.2, n: 2 }));
  await page.waitForFunction(() => document.querySelector("#log tbody").textContent.includes('"n":2'));
  const state = await page.evaluate(() => ({ gaps: window.wsgwDashboard.gaps,
                                             messages: window.wsgwDashboard.messages }));
  console.log(JSON.stringify({ first, second, ...state }));
  ok = state.gaps === 0 && state.messages === 2 && first !== second;
} finally {
  await browser.close();
}
process.exit(ok ? 0 : 1);
