/* SPDX-License-Identifier: MIT */
/* A pure C11 user of the memif part of shmlink.h: a master and a slave socket in one process
 * connect on a temporary path (callbacks with ctx), the slave sends a chained 5000-byte packet
 * in 2048-byte buffers, the master checks it, refills and answers, and the counters agree.
 * Exits 0 when every check passes, 1 otherwise. */
#define _POSIX_C_SOURCE 200809L

#include <shmlink.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int failures = 0;

#define CHECK(cond)                                                                          \
  do {                                                                                       \
    if (!(cond)) {                                                                           \
      fprintf(stderr, "%s:%d: check failed: %s (last error: %s)\n", __FILE__, __LINE__, #cond, \
              shmlink_last_error());                                                         \
      ++failures;                                                                            \
    }                                                                                        \
  } while (0)

#define CHECK_RC(expr, expected)                                                              \
  do {                                                                                        \
    int rc_ = (expr);                                                                         \
    if (rc_ != (expected)) {                                                                  \
      fprintf(stderr, "%s:%d: %s returned %d (%s), expected %d (last error: %s)\n", __FILE__, \
              __LINE__, #expr, rc_, shmlink_strerror(rc_), (expected), shmlink_last_error()); \
      ++failures;                                                                             \
    }                                                                                         \
  } while (0)

typedef struct events {
  int connects;
  int disconnects;
} events_t;

static void on_connect(shmlink_memif_t *iface, void *ctx) {
  events_t *e = (events_t *)ctx;
  if (shmlink_memif_is_connected(iface) == 1) ++e->connects;
}

static void on_disconnect(shmlink_memif_t *iface, const char *reason, void *ctx) {
  events_t *e = (events_t *)ctx;
  (void)iface;
  if (reason != NULL) ++e->disconnects;
}

/* Polls both sockets until both interfaces are up or about 10 s have passed. */
static int connect_both(shmlink_memif_socket_t *a, shmlink_memif_socket_t *b, shmlink_memif_t *ia,
                        shmlink_memif_t *ib) {
  int round;
  for (round = 0; round < 5000; ++round) {
    if (shmlink_memif_is_connected(ia) == 1 && shmlink_memif_is_connected(ib) == 1) return 1;
    (void)shmlink_memif_socket_poll(a, 1);
    (void)shmlink_memif_socket_poll(b, 1);
  }
  return 0;
}

/* Sends one packet of `size` bytes with byte i = (i * 7 + seed) & 0xff; returns the buffers used. */
static size_t send_packet(shmlink_memif_t *iface, uint32_t size, unsigned seed) {
  shmlink_memif_buffer_t bufs[8];
  size_t n = 0, sent = 0, k, off = 0;
  CHECK_RC(shmlink_memif_alloc(iface, 0, bufs, 8, 1, size, &n), SHMLINK_OK);
  for (k = 0; k < n; ++k) {
    uint32_t j;
    for (j = 0; j < bufs[k].len; ++j) bufs[k].data[j] = (uint8_t)((off + j) * 7 + seed);
    off += bufs[k].len;
  }
  CHECK(off == size);
  CHECK_RC(shmlink_memif_tx_burst(iface, 0, bufs, n, &sent), SHMLINK_OK);
  CHECK(sent == n);
  return n;
}

/* Receives one whole packet into `out` (capacity `cap`); returns its size, or 0. */
static size_t receive_packet(shmlink_memif_t *iface, uint8_t *out, size_t cap) {
  shmlink_memif_buffer_t bufs[8];
  size_t n = 0, k, size = 0;
  CHECK_RC(shmlink_memif_wait_rx(iface, 0, 5000LL * 1000 * 1000), SHMLINK_OK);
  CHECK_RC(shmlink_memif_rx_burst(iface, 0, bufs, 8, &n), SHMLINK_OK);
  for (k = 0; k < n; ++k) {
    if (size + bufs[k].len <= cap) memcpy(out + size, bufs[k].data, bufs[k].len);
    size += bufs[k].len;
    CHECK(((bufs[k].flags & SHMLINK_MEMIF_BUFFER_NEXT) != 0) == (k + 1 < n));
  }
  CHECK_RC(shmlink_memif_refill(iface, 0, SIZE_MAX), SHMLINK_OK);
  return size;
}

static int pattern_ok(const uint8_t *p, size_t size, unsigned seed) {
  size_t i;
  for (i = 0; i < size; ++i)
    if (p[i] != (uint8_t)(i * 7 + seed)) return 0;
  return 1;
}

int main(void) {
  char dir[] = "/tmp/shmlink-capi-memif-XXXXXX";
  char path[128];
  static uint8_t got[8192];
  events_t master_events = {0, 0}, slave_events = {0, 0};
  shmlink_memif_socket_spec_t sa;
  shmlink_memif_spec_t ma, la;
  shmlink_memif_socket_t *ms = NULL, *ss = NULL;
  shmlink_memif_t *master = NULL, *slave = NULL;
  shmlink_memif_queue_counters_t tx, rx;
  size_t size;

  if (mkdtemp(dir) == NULL) {
    perror("mkdtemp");
    return 1;
  }
  snprintf(path, sizeof path, "%s/memif.sock", dir);

  shmlink_memif_socket_spec_init(&sa);
  sa.path = path;
  sa.app_name = "c-smoke";
  sa.reconnect_interval_ms = 20;
  CHECK_RC(shmlink_memif_socket_create(&sa, &ms), SHMLINK_OK);
  CHECK_RC(shmlink_memif_socket_create(&sa, &ss), SHMLINK_OK);
  if (ms == NULL || ss == NULL) {
    fprintf(stderr, "cannot continue without sockets\n");
    return 1;
  }
  CHECK(shmlink_memif_socket_fd(ms) >= 0);

  shmlink_memif_spec_init(&ma);
  ma.role = SHMLINK_MEMIF_MASTER;
  ma.id = 7;
  ma.name = "c-master";
  ma.secret = "smoke";
  ma.on_connect = on_connect;
  ma.on_disconnect = on_disconnect;
  ma.ctx = &master_events;
  CHECK_RC(shmlink_memif_create(ms, &ma, &master), SHMLINK_OK);

  memset(&la, 0, sizeof la); /* zeroed fields take the defaults */
  la.role = SHMLINK_MEMIF_SLAVE;
  la.id = 7;
  la.name = "c-slave";
  la.secret = "smoke";
  la.on_connect = on_connect;
  la.on_disconnect = on_disconnect;
  la.ctx = &slave_events;
  CHECK_RC(shmlink_memif_create(ss, &la, &slave), SHMLINK_OK);

  if (master != NULL && slave != NULL && connect_both(ms, ss, master, slave)) {
    CHECK(master_events.connects == 1 && slave_events.connects == 1);

    CHECK(send_packet(slave, 5000, 3) == 3); /* 2048 + 2048 + 904 */
    size = receive_packet(master, got, sizeof got);
    CHECK(size == 5000 && pattern_ok(got, size, 3));

    CHECK(send_packet(master, 100, 9) == 1);
    size = receive_packet(slave, got, sizeof got);
    CHECK(size == 100 && pattern_ok(got, size, 9));

    CHECK_RC(shmlink_memif_get_counters(slave, 1, 0, &tx), SHMLINK_OK);
    CHECK_RC(shmlink_memif_get_counters(master, 0, 0, &rx), SHMLINK_OK);
    CHECK(tx.packets == 1 && tx.bytes == 5000 && rx.packets == 1 && rx.bytes == 5000);
    CHECK_RC(shmlink_memif_get_counters(master, 0, 1, &rx), SHMLINK_E_OUT_OF_RANGE);
    CHECK(strstr(shmlink_last_error(), "c-master") != NULL);
  } else {
    CHECK(!"the interfaces connected");
  }

  CHECK_RC(shmlink_memif_close(slave), SHMLINK_OK);
  CHECK_RC(shmlink_memif_socket_close(ss), SHMLINK_OK);
  CHECK_RC(shmlink_memif_socket_close(ms), SHMLINK_OK); /* also removes the socket file */
  CHECK(strcmp(shmlink_strerror(SHMLINK_E_NOT_CONNECTED), "unknown error") != 0);

  if (rmdir(dir) != 0) {
    perror("rmdir (a file was left behind)");
    ++failures;
  }
  if (failures != 0) fprintf(stderr, "%d check(s) failed\n", failures);
  else printf("capi_memif_smoke: all checks passed\n");
  return failures == 0 ? 0 : 1;
}
