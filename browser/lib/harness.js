// Starts what a browser test needs: a real SMTP server (smtp-server), an entitled
// process on a fresh SQLite data directory, and Debian's Chromium via playwright-core.
import { spawn, execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { SMTPServer } from 'smtp-server';
import { simpleParser } from 'mailparser';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
export const ENTITLED = process.env.ENTITLED_BIN ?? path.resolve(here, '../../target/debug/entitled');
export const PASSWORD = 'correct horse battery staple';

// Flags that work on this kind of machine: no sandbox as root, nothing reaching out.
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

async function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

export async function startSmtp() {
  const messages = [];
  const waiters = [];
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    logger: false,
    onData(stream, session, callback) {
      simpleParser(stream).then((mail) => {
        const to = session.envelope.rcptTo.map((r) => r.address.toLowerCase());
        messages.push({ to, subject: mail.subject ?? '', text: mail.text ?? '', html: mail.html || '' });
        waiters.splice(0).forEach((wake) => wake());
        callback();
      }, callback);
    },
  });
  const port = await freePort();
  await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    port,
    // Resolves with (and removes) the first message to `to` whose subject contains `subject`.
    async expect(to, subject, timeoutMs = 10000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const i = messages.findIndex((m) => m.to.includes(to) && m.subject.includes(subject));
        if (i >= 0) return messages.splice(i, 1)[0];
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`no email to ${to} about "${subject}"; got ${JSON.stringify(messages.map((m) => [m.to, m.subject]))}`);
        await new Promise((resolve) => { waiters.push(resolve); setTimeout(resolve, left); });
      }
    },
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

export function linkIn(mail, pathPrefix) {
  const match = mail.text.match(/https?:\/\/\S+/g)?.find((url) => new URL(url).pathname === pathPrefix);
  if (!match) throw new Error(`no ${pathPrefix} link in: ${mail.text}`);
  return match;
}

export async function startEntitled(smtp) {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'entitle-browser-'));
  const port = await freePort();
  const baseUrl = `http://127.0.0.1:${port}`;
  const env = {
    ...process.env,
    ENTITLE_PUBLIC_URL: baseUrl,
    ENTITLE_SMTP__HOST: '127.0.0.1',
    ENTITLE_SMTP__PORT: String(smtp.port),
    ENTITLE_SMTP__TLS: 'none',
    ENTITLE_SMTP__FROM: 'entitle <no-reply@entitle.test>',
    ENTITLE_PASSWORD__MEMORY_KIB: '1024',
    ENTITLE_PASSWORD__ITERATIONS: '1',
    // No DNS server answers here: domain verification fails fast and says so.
    ENTITLE_DOMAINS__RESOLVER: '127.0.0.1:9',
  };
  delete env.ENTITLE_TEST_DATABASE_URL;
  // Asynchronous: the command sends mail to the SMTP server running in this process.
  const run = (args) => promisify(execFile)(ENTITLED, [...args, '--data-dir', dataDir], { env });
  const child = spawn(ENTITLED, ['serve', '--data-dir', dataDir, '--listen', `127.0.0.1:${port}`], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr.on('data', (chunk) => { log += chunk; });
  const deadline = Date.now() + 30000;
  for (;;) {
    try {
      if ((await fetch(`${baseUrl}/readyz`)).ok) break;
    } catch { /* not listening yet */ }
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`entitled did not start:\n${log}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  async function api(method, urlPath, body, token) {
    const headers = { 'content-type': 'application/json' };
    if (token) headers.authorization = `Bearer ${token}`;
    const response = await fetch(`${baseUrl}${urlPath}`, { method, headers, body: body ? JSON.stringify(body) : undefined });
    const text = await response.text();
    return { status: response.status, body: text ? JSON.parse(text) : null };
  }
  return {
    baseUrl,
    api,
    log: () => log,
    // An operator with a password, signed in through the API; returns their bearer token.
    async operator(email) {
      await run(['bootstrap', '--email', email, '--first-name', 'Olga', '--last-name', 'Operator', '--country', 'United Kingdom']);
      const mail = await smtp.expect(email, 'operator account');
      const token = new URL(linkIn(mail, '/reset-password')).searchParams.get('token');
      const set = await api('POST', '/api/v1/reset-password', { token, email, password: PASSWORD });
      if (set.status !== 200) throw new Error(JSON.stringify(set));
      const session = await api('POST', '/api/v1/session', { email, password: PASSWORD });
      return session.body.session_token;
    },
    async stop() {
      child.kill('SIGTERM');
      await new Promise((resolve) => (child.exitCode !== null ? resolve() : child.on('exit', resolve)));
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export async function launchBrowser() {
  return chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', args: CHROMIUM_ARGS });
}
