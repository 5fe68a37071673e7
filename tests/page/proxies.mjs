// proxies.mjs: real reverse proxies in front of askgate, for the page tests.
//
// It makes a CA and a server certificate (127.0.0.1, localhost) with the
// openssl CLI; starts Debian's nginx or Caddy in the foreground on a given
// loopback port, with TLS, serving askgate at /askgate/ with the very
// configuration docs/deploy.md shows (read from that file; only the port,
// the certificate paths and the upstream change); and stops each process
// by its pid. Everything a proxy writes (pid file, logs, temp files, Caddy's
// storage) stays in its own temporary directory. Readiness is a poll of the
// port with a deadline, never a sleep.

import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { repoRoot } from './support.mjs';

const START_TIMEOUT_MS = 10000;
const DEPLOY_DOC = path.join(repoRoot, 'docs', 'deploy.md');

// The path of `command` on $PATH (or in the sbin folders, where Debian puts
// nginx), or null.
export function which(command) {
  const dirs = [...(process.env.PATH || '').split(':'), '/usr/sbin', '/usr/local/sbin'];
  for (const dir of dirs) {
    const candidate = path.join(dir || '.', command);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return null;
}

export async function freePort() {
  const server = net.createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

// {dir, ca, cert, key}: a CA and a server certificate signed by it, for
// IP 127.0.0.1, localhost and `names`, made as docs/deploy.md makes them.
export function makeCertificates(names = []) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'askgate-tls-'));
  const file = (name) => path.join(dir, name);
  const openssl = (args) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  openssl(['req', '-x509', ...ec, '-days', '2', '-keyout', 'ca.key', '-out', 'ca.pem', '-subj', '/CN=askgate test CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  openssl(['req', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1']);
  fs.writeFileSync(file('server.ext'), [
    'basicConstraints=critical,CA:FALSE',
    'keyUsage=critical,digitalSignature',
    'extendedKeyUsage=serverAuth',
    `subjectAltName=${['IP:127.0.0.1', 'DNS:localhost', ...names.map((name) => `DNS:${name}`)].join(',')}`,
    '',
  ].join('\n'));
  openssl(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial',
    '-days', '2', '-out', 'server.pem', '-extfile', 'server.ext']);
  return { dir, ca: file('ca.pem'), cert: file('server.pem'), key: file('server.key') };
}

// The first ```lang block of docs/deploy.md.
function documented(lang) {
  const text = fs.readFileSync(DEPLOY_DOC, 'utf8');
  const match = new RegExp('```' + lang + '\\n([\\s\\S]*?)\\n```').exec(text);
  if (!match) throw new Error(`docs/deploy.md has no \`\`\`${lang} block`);
  return match[1];
}

// Replaces each [from, to] once, and fails if `from` is not there, so the
// test notices when the documented configuration changes shape.
function substitute(text, pairs) {
  for (const [from, to] of pairs) {
    if (!text.includes(from)) throw new Error(`docs/deploy.md's configuration no longer has ${JSON.stringify(from)}`);
    text = text.split(from).join(to);
  }
  return text;
}

const DOC_UPSTREAM = '127.0.0.1:8787';
const DOC_CERT = '/etc/askgate/tls/home.example.crt';
const DOC_KEY = '/etc/askgate/tls/home.example.key';

// nginx's server block from docs/deploy.md, on 127.0.0.1:`port`, in front
// of `upstream` (host:port), inside the smallest nginx.conf that runs it
// unprivileged and in the foreground.
function nginxConfig(dir, port, upstream, tls) {
  const server = substitute(documented('nginx'), [
    ['    listen [::]:443 ssl http2;\n', ''],
    ['listen 443 ssl http2;', `listen 127.0.0.1:${port} ssl http2;`],
    [DOC_CERT, tls.cert],
    [DOC_KEY, tls.key],
    [DOC_UPSTREAM, upstream],
  ]);
  const temp = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']
    .map((name) => `    ${name}_temp_path ${dir}/${name};`)
    .join('\n');
  return [
    // As root, workers would otherwise run as nobody, who cannot enter dir.
    process.getuid?.() === 0 ? 'user root;' : '',
    'worker_processes 1;',
    `pid ${dir}/nginx.pid;`,
    `error_log ${dir}/error.log warn;`,
    'events { worker_connections 256; }',
    'http {',
    `    access_log ${dir}/access.log;`,
    temp,
    server,
    '}',
    '',
  ].join('\n');
}

// The Caddyfile from docs/deploy.md for `names` (and 127.0.0.1) on
// 127.0.0.1:`port` alone, with global options that keep Caddy to itself:
// no admin endpoint, no port 80, no trust store changes, storage in `dir`.
function caddyConfig(dir, port, httpPort, upstream, tls, names) {
  const addresses = [...names, '127.0.0.1'].map((name) => `https://${name}:${port}`).join(', ');
  const site = substitute(documented('caddyfile'), [
    ['home.example {', `${addresses} {\n    bind 127.0.0.1`],
    [`tls ${DOC_CERT} ${DOC_KEY}`, `tls ${tls.cert} ${tls.key}`],
    [DOC_UPSTREAM, upstream],
  ]);
  return [
    '{',
    '    admin off',
    '    auto_https disable_redirects',
    '    skip_install_trust',
    `    http_port ${httpPort}`,
    `    https_port ${port}`,
    `    storage file_system ${dir}/storage`,
    `    log default {`,
    `        output file ${dir}/caddy.log`,
    `    }`,
    '}',
    site,
    '',
  ].join('\n');
}

// The inode of the socket listening on 127.0.0.1:`port`, or null.
function listeningInode(port) {
  const local = `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  for (const line of fs.readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const fields = line.trim().split(/\s+/);
    if (fields[1] === local && fields[3] === '0A') return fields[9];
  }
  return null;
}

// Whether process `pid` holds the socket `inode`.
function holds(pid, inode) {
  try {
    return fs.readdirSync(`/proc/${pid}/fd`).some((fd) => {
      try {
        return fs.readlinkSync(`/proc/${pid}/fd/${fd}`) === `socket:[${inode}]`;
      } catch {
        return false; // closed meanwhile
      }
    });
  } catch {
    return false;
  }
}

// Until `child` itself listens on 127.0.0.1:`port`: a connection alone
// might reach another process that took the port after `freePort`, and
// then the proxy exits (the caller tries another port).
async function waitListening(port, child, logs) {
  const deadline = Date.now() + START_TIMEOUT_MS;
  let exited = null;
  child.once('exit', (code, signal) => {
    exited = code ?? signal;
  });
  for (;;) {
    if (exited !== null) throw new Error(`the proxy exited (${exited}) before listening:\n${logs()}`);
    const inode = listeningInode(port);
    if (inode !== null && holds(child.pid, inode)) return;
    if (Date.now() > deadline) throw new Error(`the proxy did not listen on ${port} within ${START_TIMEOUT_MS} ms:\n${logs()}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

// Ends `child` by its pid and waits for it.
async function stopChild(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  process.kill(child.pid, 'SIGTERM');
  const timer = setTimeout(() => {
    if (child.exitCode === null && child.signalCode === null) process.kill(child.pid, 'SIGKILL');
  }, 3000);
  await exited;
  clearTimeout(timer);
}

function launch(command, args, dir, env = {}) {
  const output = [];
  const child = spawn(command, args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  child.stdout.on('data', (chunk) => output.push(String(chunk)));
  child.stderr.on('data', (chunk) => output.push(String(chunk)));
  return { child, output };
}

function readIfThere(file) {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

// The proxies, by name: each `start(port, upstream, tls, names)` resolves
// to {name, pid, logs(), stop()} once 127.0.0.1:`port` accepts connections.
// `names` are the host names it answers besides 127.0.0.1 (nginx's one
// server answers any).
export const PROXIES = {
  nginx: {
    command: 'nginx',
    install: 'apt-get install nginx-light',
    async start(port, upstream, tls) {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'askgate-nginx-'));
      const conf = path.join(dir, 'nginx.conf');
      fs.writeFileSync(conf, nginxConfig(dir, port, upstream, tls));
      const { child, output } = launch(which('nginx'), ['-p', `${dir}/`, '-e', `${dir}/error.log`, '-c', conf, '-g', 'daemon off;'], dir);
      return started('nginx', dir, port, child, () => output.join('') + readIfThere(path.join(dir, 'error.log')));
    },
  },
  caddy: {
    command: 'caddy',
    install: 'apt-get install caddy',
    async start(port, upstream, tls, names = []) {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'askgate-caddy-'));
      const file = path.join(dir, 'Caddyfile');
      // Caddy refuses an http_port equal to its https_port ("scheme and
      // port violate convention"), and a port just closed may come back.
      let httpPort = await freePort();
      while (httpPort === port) httpPort = await freePort();
      fs.writeFileSync(file, caddyConfig(dir, port, httpPort, upstream, tls, names));
      const env = { HOME: dir, XDG_DATA_HOME: `${dir}/data`, XDG_CONFIG_HOME: `${dir}/config` };
      const { child, output } = launch(which('caddy'), ['run', '--config', file, '--adapter', 'caddyfile'], dir, env);
      return started('caddy', dir, port, child, () => output.join('') + readIfThere(path.join(dir, 'caddy.log')));
    },
  },
};

async function started(name, dir, port, child, logs) {
  try {
    await waitListening(port, child, logs);
  } catch (error) {
    await stopChild(child);
    fs.rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  return {
    name,
    pid: child.pid,
    logs,
    async stop() {
      await stopChild(child);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
