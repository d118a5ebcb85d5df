// The nginx-sidecar bench baseline's configuration renderer: each role's TLS directives, files only under the prefix, and refusals of what nginx cannot do.
import { describe, expect, it } from "vitest";
import { type NginxSidecarConf, renderNginxSidecarConf } from "../../bench/tools/nginx-sidecar.ts";

const certs = { certFile: "/certs/me.pem", keyFile: "/certs/me-key.pem", caFile: "/certs/ca.pem" };
const client: NginxSidecarConf = {
  role: "client",
  listen: "127.0.0.1:15001",
  upstream: "10.0.0.2:15008",
  expectedPeerSan: "server.bench.svc.cluster.local",
  prefix: "/run/sidecar",
  loadModule: "load_module /usr/lib/nginx/modules/ngx_stream_module.so;",
  ...certs,
};
const server: NginxSidecarConf = { role: "server", listen: "15008", upstream: "127.0.0.1:8080", prefix: "/run/sidecar", ...certs };
const lines = (conf: NginxSidecarConf) =>
  renderNginxSidecarConf(conf)
    .split("\n")
    .map((l) => l.trim());

describe("renderNginxSidecarConf", () => {
  it("client: plaintext listen, mutual TLS 1.3 upstream with its certificate, the CA and the server's DNS name checked", () => {
    const l = lines(client);
    expect(l[1]).toBe("load_module /usr/lib/nginx/modules/ngx_stream_module.so;");
    for (const d of [
      "daemon off;",
      "master_process on;",
      "worker_processes 1;",
      "listen 127.0.0.1:15001;",
      "proxy_pass 10.0.0.2:15008;",
      "proxy_ssl on;",
      'proxy_ssl_certificate "/certs/me.pem";',
      'proxy_ssl_certificate_key "/certs/me-key.pem";',
      "proxy_ssl_verify on;",
      'proxy_ssl_trusted_certificate "/certs/ca.pem";',
      "proxy_ssl_name server.bench.svc.cluster.local;",
      "proxy_ssl_protocols TLSv1.3;",
      "proxy_ssl_session_reuse on;",
    ])
      expect(l).toContain(d);
    expect(l.some((x) => x.startsWith("ssl_"))).toBe(false);
  });

  it("server: TLS 1.3 listen requiring a client certificate from the CA, plaintext to the app", () => {
    const l = lines(server);
    for (const d of [
      "listen 15008 ssl;",
      "proxy_pass 127.0.0.1:8080;",
      'ssl_certificate "/certs/me.pem";',
      'ssl_certificate_key "/certs/me-key.pem";',
      "ssl_protocols TLSv1.3;",
      "ssl_verify_client on;",
      'ssl_client_certificate "/certs/ca.pem";',
    ])
      expect(l).toContain(d);
    expect(l.some((x) => x.startsWith("proxy_ssl"))).toBe(false);
    expect(l.some((x) => x.startsWith("load_module"))).toBe(false);
  });

  it("writes pid, lock and error log under the prefix only, never /etc/nginx or /var/log", () => {
    const text = renderNginxSidecarConf({ ...server, pidFile: "/run/sidecar/x/n.pid", errorLog: "e.log", workerProcesses: 2, workerConnections: 1024 });
    expect(text).toContain('pid "/run/sidecar/x/n.pid";');
    expect(text).toContain('lock_file "/run/sidecar/nginx.lock";');
    expect(text).toContain('error_log "/run/sidecar/e.log" notice;');
    expect(text).toContain("worker_processes 2;");
    expect(text).toContain("worker_connections 1024;");
    expect(text).not.toMatch(/\/etc\/nginx|\/var\/log|\/var\/lib\/nginx/);
    expect(() => renderNginxSidecarConf({ ...server, pidFile: "/run/nginx.pid" })).toThrow(/inside the prefix/);
    expect(() => renderNginxSidecarConf({ ...server, errorLog: "../error.log" })).toThrow(/inside the prefix/);
    expect(() => renderNginxSidecarConf({ ...server, prefix: "relative" })).toThrow(/absolute/);
  });

  it("refuses what nginx's stream module cannot check, and values nginx would parse", () => {
    expect(() => renderNginxSidecarConf({ ...client, expectedPeerSan: undefined })).toThrow(/needs expectedPeerSan/);
    expect(() => renderNginxSidecarConf({ ...client, expectedPeerSan: "spiffe://cluster.local/ns/bench/sa/server" })).toThrow(/cannot check a URI/);
    expect(() => renderNginxSidecarConf({ ...server, expectedPeerSan: "client.bench.svc.cluster.local" })).toThrow(/server role cannot check/);
    expect(() => renderNginxSidecarConf({ ...server, certFile: "/certs/$host.pem" })).toThrow(/certFile/);
    expect(() => renderNginxSidecarConf({ ...server, caFile: "/certs/ca.pem; daemon on" })).toThrow(/caFile/);
    expect(() => renderNginxSidecarConf({ ...client, upstream: "15008" })).toThrow(/host:port/);
    expect(() => renderNginxSidecarConf({ ...server, listen: "127.0.0.1:70000" })).toThrow(/1-65535/);
    expect(() => renderNginxSidecarConf({ ...server, workerProcesses: 0 })).toThrow(/workerProcesses/);
  });
});
