// Node-API addon for the Ambit agent: sockets inside a pod's network namespace, SO_ORIGINAL_DST, SO_MARK.
//
// Node cannot switch network namespaces, so the agent asks this addon to enter a pod's netns on the calling
// thread, create the socket there, and return to its own netns before returning: the socket stays bound to
// the pod's namespace and Node serves it from the agent's. Every error path restores the namespace; if that
// ever fails the process aborts, since the thread would otherwise keep running inside the pod.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <node_api.h>

// From linux/netfilter_ipv4.h, which clashes with netinet/in.h.
#ifndef SO_ORIGINAL_DST
#define SO_ORIGINAL_DST 80
#endif

// Throws an Error with code, errno and syscall properties; always returns NULL for convenience.
static napi_value throw_errno(napi_env env, const char *code, const char *syscall, int err, const char *detail) {
  char message[512];
  snprintf(message, sizeof message, "%s failed: %s%s%s", syscall, strerror(err), detail ? " " : "", detail ? detail : "");
  napi_value msg, error, value;
  napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &msg);
  napi_create_error(env, NULL, msg, &error);
  napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &value);
  napi_set_named_property(env, error, "code", value);
  napi_create_int32(env, err, &value);
  napi_set_named_property(env, error, "errno", value);
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &value);
  napi_set_named_property(env, error, "syscall", value);
  napi_throw(env, error);
  return NULL;
}

static napi_value throw_type(napi_env env, const char *message) {
  napi_throw_type_error(env, "AMBIT_E_NATIVE_ARGUMENT", message);
  return NULL;
}

static int get_string(napi_env env, napi_value v, char *buf, size_t len) {
  size_t out;
  return napi_get_value_string_utf8(env, v, buf, len, &out) == napi_ok && out < len - 1;
}

static int get_int(napi_env env, napi_value v, int32_t *out) {
  return napi_get_value_int32(env, v, out) == napi_ok;
}

// Enters the netns at `path`; on success *original holds an fd of the thread's previous netns.
static int enter_netns(const char *path, int *original, const char **failed) {
  *original = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (*original < 0) {
    *failed = "open(/proc/thread-self/ns/net)";
    return -1;
  }
  int target = open(path, O_RDONLY | O_CLOEXEC);
  if (target < 0) {
    int err = errno;
    close(*original);
    errno = err;
    *failed = "open(netns)";
    return -1;
  }
  if (setns(target, CLONE_NEWNET) != 0) {
    int err = errno;
    close(target);
    close(*original);
    errno = err;
    *failed = "setns";
    return -1;
  }
  close(target);
  return 0;
}

static void leave_netns(int original) {
  if (setns(original, CLONE_NEWNET) != 0) {
    // Continuing would run the agent's other work inside a pod's network namespace.
    fprintf(stderr, "ambit_net: cannot return to the agent's network namespace: %s\n", strerror(errno));
    abort();
  }
  close(original);
}

// listenInNetns(netnsPath: string, host: string, port: number, reusePort: boolean, transparent: boolean, backlog: number): number
static napi_value listen_in_netns(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  char path[256], host[64];
  int32_t port, backlog;
  bool reuse_port = false, transparent = false;
  if (argc < 6 || !get_string(env, argv[0], path, sizeof path) || !get_string(env, argv[1], host, sizeof host) || !get_int(env, argv[2], &port) ||
      napi_get_value_bool(env, argv[3], &reuse_port) != napi_ok || napi_get_value_bool(env, argv[4], &transparent) != napi_ok || !get_int(env, argv[5], &backlog)) {
    return throw_type(env, "listenInNetns(netnsPath, host, port, reusePort, transparent, backlog): bad arguments");
  }
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  if (port < 0 || port > 65535 || inet_pton(AF_INET, host, &addr.sin_addr) != 1) return throw_type(env, "listenInNetns: host must be an IPv4 address and port 0-65535");

  int original;
  const char *failed = NULL;
  if (enter_netns(path, &original, &failed) != 0) {
    int err = errno;
    return throw_errno(env, err == EINVAL ? "AMBIT_E_NATIVE_NOT_NETNS" : "AMBIT_E_NATIVE_NETNS", failed, err, err == EINVAL ? "(is it a network namespace?)" : path);
  }
  int one = 1, err = 0;
  const char *syscall = NULL;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    err = errno, syscall = "socket";
  } else if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0) {
    err = errno, syscall = "setsockopt(SO_REUSEADDR)";
  } else if (reuse_port && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
    err = errno, syscall = "setsockopt(SO_REUSEPORT)";
  } else if (transparent && setsockopt(fd, SOL_IP, IP_TRANSPARENT, &one, sizeof one) != 0) {
    err = errno, syscall = "setsockopt(IP_TRANSPARENT)";
  } else if (bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
    err = errno, syscall = "bind";
  } else if (listen(fd, backlog) != 0) {
    err = errno, syscall = "listen";
  }
  if (syscall && fd >= 0) close(fd);
  leave_netns(original);
  if (syscall) return throw_errno(env, err == EADDRINUSE ? "AMBIT_E_NATIVE_ADDRINUSE" : "AMBIT_E_NATIVE_SOCKET", syscall, err, path);
  napi_value result;
  napi_create_int32(env, fd, &result);
  return result;
}

// originalDst(fd: number): { address: string, port: number }
static napi_value original_dst(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fd;
  if (argc < 1 || !get_int(env, argv[0], &fd)) return throw_type(env, "originalDst(fd): fd must be a number");
  struct sockaddr_in dst;
  socklen_t len = sizeof dst;
  if (getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &dst, &len) != 0) return throw_errno(env, "AMBIT_E_NATIVE_ORIGINAL_DST", "getsockopt(SO_ORIGINAL_DST)", errno, NULL);
  char address[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &dst.sin_addr, address, sizeof address);
  napi_value result, value;
  napi_create_object(env, &result);
  napi_create_string_utf8(env, address, NAPI_AUTO_LENGTH, &value);
  napi_set_named_property(env, result, "address", value);
  napi_create_int32(env, ntohs(dst.sin_port), &value);
  napi_set_named_property(env, result, "port", value);
  return result;
}

// tcpNoDelay(fd: number): boolean — whether TCP_NODELAY is set (the relay's sockets must send each write at once).
static napi_value tcp_no_delay(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fd;
  if (argc < 1 || !get_int(env, argv[0], &fd)) return throw_type(env, "tcpNoDelay(fd): fd must be a number");
  int on = 0;
  socklen_t len = sizeof on;
  if (getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, &len) != 0) return throw_errno(env, "AMBIT_E_NATIVE_SOCKET", "getsockopt(TCP_NODELAY)", errno, NULL);
  napi_value result;
  napi_get_boolean(env, on != 0, &result);
  return result;
}

// createMarkedSocket(mark: number, netnsPath: string | ""): number — unconnected, non-blocking TCP socket.
static napi_value create_marked_socket(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t mark;
  char path[256] = "";
  if (argc < 2 || !get_int(env, argv[0], &mark) || !get_string(env, argv[1], path, sizeof path)) return throw_type(env, "createMarkedSocket(mark, netnsPath): bad arguments");
  int original = -1;
  const char *failed = NULL;
  if (path[0] && enter_netns(path, &original, &failed) != 0) {
    int err = errno;
    return throw_errno(env, err == EINVAL ? "AMBIT_E_NATIVE_NOT_NETNS" : "AMBIT_E_NATIVE_NETNS", failed, err, path);
  }
  int err = 0;
  const char *syscall = NULL;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    err = errno, syscall = "socket";
  } else if (setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof mark) != 0) {
    err = errno, syscall = "setsockopt(SO_MARK)";
    close(fd);
  }
  if (original >= 0) leave_netns(original);
  if (syscall) return throw_errno(env, "AMBIT_E_NATIVE_SOCKET", syscall, err, err == EPERM ? "(needs CAP_NET_ADMIN)" : NULL);
  napi_value result;
  napi_create_int32(env, fd, &result);
  return result;
}

// closeFd(fd: number): for listeners that were never handed to Node.
static napi_value close_fd(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fd;
  if (argc < 1 || !get_int(env, argv[0], &fd)) return throw_type(env, "closeFd(fd): fd must be a number");
  if (close(fd) != 0) return throw_errno(env, "AMBIT_E_NATIVE_SOCKET", "close", errno, NULL);
  return NULL;
}

// releaseFreeMemory(): returns the C heap's free pages to the kernel (glibc malloc_trim); true if any were.
// Node's native objects (sockets, HTTP/2 streams, TLS) live there, and after a burst of connections glibc keeps
// the freed pages mapped, so RSS would go on counting them.
static napi_value release_free_memory(napi_env env, napi_callback_info info) {
  (void)info;
  int released = 0;
#ifdef __GLIBC__
  released = malloc_trim(0);
#endif
  napi_value result;
  napi_get_boolean(env, released != 0, &result);
  return result;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"listenInNetns", NULL, listen_in_netns, NULL, NULL, NULL, napi_enumerable, NULL},
      {"originalDst", NULL, original_dst, NULL, NULL, NULL, napi_enumerable, NULL},
      {"tcpNoDelay", NULL, tcp_no_delay, NULL, NULL, NULL, napi_enumerable, NULL},
      {"createMarkedSocket", NULL, create_marked_socket, NULL, NULL, NULL, napi_enumerable, NULL},
      {"closeFd", NULL, close_fd, NULL, NULL, NULL, napi_enumerable, NULL},
      {"releaseFreeMemory", NULL, release_free_memory, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
