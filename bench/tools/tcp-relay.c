// Benchmark floor: a plain TCP relay in C (epoll, non-blocking), so the kernel's and the hypervisor's share of a relayed request can be told apart from Node's.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <fcntl.h>

#define BUF 65536

/* Reads land here; only bytes the other side cannot take yet are copied into the connection (so an idle
   connection costs its struct, as the Node relays' idle sockets cost no buffer). */
static char scratch[BUF];

struct conn;
struct end { struct conn *c; int side; };
struct conn {
  int fd[2];
  struct end ends[2];
  char *pending[2]; /* pending[i]: read from fd[i], not yet written to fd[1 - i] */
  size_t len[2], off[2];
  int dead;
  struct conn *next_dead;
};

static int ep;
/* Freed after each epoll batch: a later event of the same batch may still name a dropped connection. */
static struct conn *dead;

static void watch(struct conn *c, int i, unsigned events, int op) {
  struct epoll_event ev = { .events = events, .data.ptr = &c->ends[i] };
  epoll_ctl(ep, op, c->fd[i], &ev);
}

static void drop(struct conn *c) {
  free(c->pending[0]);
  free(c->pending[1]);
  close(c->fd[0]);
  close(c->fd[1]);
  c->dead = 1;
  c->next_dead = dead;
  dead = c;
}

/* Writes what side i read (in buf) to the other side; returns 0 when the rest had to be kept for later. */
static int flush(struct conn *c, int i, const char *buf) {
  while (c->off[i] < c->len[i]) {
    ssize_t n = write(c->fd[1 - i], buf + c->off[i], c->len[i] - c->off[i]);
    if (n < 0) {
      if (errno != EAGAIN) return -1;
      if (!c->pending[i]) {
        c->pending[i] = malloc(c->len[i]);
        memcpy(c->pending[i], buf, c->len[i]);
      }
      return 0;
    }
    c->off[i] += (size_t)n;
  }
  free(c->pending[i]);
  c->pending[i] = NULL;
  c->len[i] = c->off[i] = 0;
  return 1;
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: tcp-relay LISTEN_PORT TARGET_IP TARGET_PORT\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  struct sockaddr_in listen_addr = { .sin_family = AF_INET, .sin_port = htons(atoi(argv[1])) };
  inet_pton(AF_INET, "127.0.0.1", &listen_addr.sin_addr);
  struct sockaddr_in target = { .sin_family = AF_INET, .sin_port = htons(atoi(argv[3])) };
  if (inet_pton(AF_INET, argv[2], &target.sin_addr) != 1) return 2;
  int one = 1;
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(lfd, (struct sockaddr *)&listen_addr, sizeof listen_addr) || listen(lfd, 4096)) {
    perror("listen");
    return 1;
  }
  ep = epoll_create1(0);
  struct epoll_event lev = { .events = EPOLLIN, .data.ptr = NULL };
  epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev);
  printf("{\"msg\":\"listening\",\"kind\":\"c-tcp\",\"port\":%s}\n", argv[1]);
  fflush(stdout);
  struct epoll_event events[256];
  for (;;) {
    int n = epoll_wait(ep, events, 256, -1);
    for (int k = 0; k < n; k++) {
      struct end *e = events[k].data.ptr;
      if (!e) {
        int cfd;
        while ((cfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
          /* Loopback connects complete at once; a blocking connect keeps the floor's code short. */
          int ufd = socket(AF_INET, SOCK_STREAM, 0);
          if (connect(ufd, (struct sockaddr *)&target, sizeof target)) {
            close(ufd);
            close(cfd);
            continue;
          }
          fcntl(ufd, F_SETFL, fcntl(ufd, F_GETFL) | O_NONBLOCK);
          setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          setsockopt(ufd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          struct conn *c = calloc(1, sizeof *c);
          c->fd[0] = cfd;
          c->fd[1] = ufd;
          for (int i = 0; i < 2; i++) {
            c->ends[i] = (struct end){ c, i };
            watch(c, i, EPOLLIN, EPOLL_CTL_ADD);
          }
        }
        continue;
      }
      struct conn *c = e->c;
      int i = e->side;
      if (c->dead) continue;
      if (events[k].events & EPOLLOUT) {
        /* fd[i] can take more: finish what the other side read, then read from it again. */
        int r = flush(c, 1 - i, c->pending[1 - i]);
        if (r < 0) { drop(c); continue; }
        if (r == 1) {
          watch(c, i, EPOLLIN, EPOLL_CTL_MOD);
          watch(c, 1 - i, EPOLLIN, EPOLL_CTL_MOD);
        }
        continue;
      }
      ssize_t got = read(c->fd[i], scratch, BUF);
      if (got <= 0) {
        if (got < 0 && errno == EAGAIN) continue;
        drop(c);
        continue;
      }
      c->len[i] = (size_t)got;
      int r = flush(c, i, scratch);
      if (r < 0) { drop(c); continue; }
      if (r == 0) {
        /* The other side is full: stop reading this one until it drains. */
        watch(c, i, 0, EPOLL_CTL_MOD);
        watch(c, 1 - i, EPOLLIN | EPOLLOUT, EPOLL_CTL_MOD);
      }
    }
    while (dead) {
      struct conn *next = dead->next_dead;
      free(dead);
      dead = next;
    }
  }
}
