/* SPDX-License-Identifier: MIT */
/* A pure C11 user of shmlink.h: create, write, read back, keywords, a timed wait, and the error
 * code and message of a missing stream; then a sample queue (push, pop, info, signal table,
 * shutdown) and a loopback interface. Exits 0 when every check passes, 1 otherwise.
 * Streams go into a private temporary directory (SHMLINK_DIR), never the real /dev/shm ones. */
#define _POSIX_C_SOURCE 200809L

#include <shmlink.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int failures = 0;

#define CHECK(cond)                                                                  \
  do {                                                                               \
    if (!(cond)) {                                                                   \
      fprintf(stderr, "%s:%d: check failed: %s (last error: %s)\n", __FILE__, __LINE__, \
              #cond, shmlink_last_error());                                          \
      ++failures;                                                                    \
    }                                                                                \
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

int main(void) {
  char dir[] = "/tmp/shmlink-capi-smoke-XXXXXX";
  if (mkdtemp(dir) == NULL) {
    perror("mkdtemp");
    return 1;
  }
  if (setenv("SHMLINK_DIR", dir, 1) != 0) {
    perror("setenv");
    return 1;
  }

  /* create: a 2-D uint16 image, 4 wide and 3 high, with 4 keyword slots */
  shmlink_stream_spec_t spec;
  shmlink_stream_spec_init(&spec);
  spec.naxis = 2;
  spec.shape[0] = 4;
  spec.shape[1] = 3;
  spec.dtype = SHMLINK_DTYPE_U16;
  spec.keywords = 4;
  shmlink_stream_t *s = NULL;
  CHECK_RC(shmlink_stream_create("smoke", &spec, SHMLINK_EXCLUSIVE_CREATE, &s), SHMLINK_OK);
  if (s == NULL) {
    fprintf(stderr, "cannot continue without a stream\n");
    rmdir(dir);
    return 1;
  }

  shmlink_stream_geometry_t geo;
  CHECK_RC(shmlink_stream_geometry(s, &geo), SHMLINK_OK);
  CHECK(geo.naxis == 2 && geo.shape[0] == 4 && geo.shape[1] == 3 && geo.shape[2] == 0);
  CHECK(geo.dtype == SHMLINK_DTYPE_U16 && geo.nelement == 12 && geo.frame_bytes == 24);

  /* write, read back */
  uint16_t frame[12], back[12];
  for (int i = 0; i < 12; ++i) frame[i] = (uint16_t)(1000 + i);
  uint64_t before = shmlink_stream_cnt0(s);
  CHECK_RC(shmlink_stream_write(s, frame, sizeof frame, 123456789), SHMLINK_OK);
  CHECK(shmlink_stream_cnt0(s) == before + 1);
  shmlink_frame_info_t info;
  memset(back, 0, sizeof back);
  CHECK_RC(shmlink_stream_read_copy(s, back, sizeof back, &info), SHMLINK_OK);
  CHECK(memcmp(frame, back, sizeof frame) == 0);
  CHECK(info.cnt0 == before + 1 && info.atime_ns == 123456789 && info.writetime_ns > 0);
  CHECK_RC(shmlink_stream_write(s, frame, 10, -1), SHMLINK_E_SIZE_MISMATCH);
  CHECK(strstr(shmlink_last_error(), "smoke") != NULL);

  /* keywords */
  shmlink_keyword_t kw;
  CHECK_RC(shmlink_stream_set_keyword_int(s, "EXPTIME", 42, "exposure, us"), SHMLINK_OK);
  CHECK_RC(shmlink_stream_set_keyword_double(s, "GAIN", 1.5, NULL), SHMLINK_OK);
  CHECK_RC(shmlink_stream_set_keyword_string(s, "CAMERA", "ocam2k", "model"), SHMLINK_OK);
  CHECK_RC(shmlink_stream_get_keyword(s, "EXPTIME", &kw), SHMLINK_OK);
  CHECK(kw.type == SHMLINK_KW_INT && kw.i == 42 && strcmp(kw.comment, "exposure, us") == 0);
  CHECK_RC(shmlink_stream_get_keyword(s, "GAIN", &kw), SHMLINK_OK);
  CHECK(kw.type == SHMLINK_KW_DOUBLE && kw.d == 1.5);
  CHECK_RC(shmlink_stream_get_keyword(s, "CAMERA", &kw), SHMLINK_OK);
  CHECK(kw.type == SHMLINK_KW_STRING && strcmp(kw.s, "ocam2k") == 0);
  CHECK_RC(shmlink_stream_get_keyword(s, "NOPE", &kw), SHMLINK_E_NOT_FOUND);

  /* waits: nothing new -> timeout; cnt0 already past last_cnt0 -> at once */
  uint64_t now = shmlink_stream_cnt0(s), seen = 0;
  CHECK_RC(shmlink_stream_wait_futex(s, now, 10 * 1000 * 1000, &seen), SHMLINK_E_TIMEOUT);
  CHECK_RC(shmlink_stream_wait_futex(s, now - 1, 10 * 1000 * 1000, &seen), SHMLINK_OK);
  CHECK(seen == now);
  CHECK_RC(shmlink_stream_wait_spin(s, now, 1000 * 1000, NULL), SHMLINK_E_TIMEOUT);

  /* a mode outside the enum (legal in C) */
  {
    shmlink_stream_t *bad = NULL;
    CHECK_RC(shmlink_stream_create("badmode", &spec, (shmlink_open_mode_t)7, &bad), SHMLINK_E_INVALID_ARGUMENT);
    CHECK(bad == NULL && strstr(shmlink_last_error(), "open mode") != NULL);
  }

  /* a missing stream: code, static string, and a message naming it */
  shmlink_stream_t *missing = (shmlink_stream_t *)&spec; /* must be reset to NULL */
  CHECK_RC(shmlink_stream_open("no-such-stream", &missing), SHMLINK_E_NOT_FOUND);
  CHECK(missing == NULL);
  CHECK(strstr(shmlink_last_error(), "no-such-stream") != NULL);
  CHECK(strcmp(shmlink_strerror(SHMLINK_E_NOT_FOUND), "not found") == 0);
  CHECK(shmlink_strerror(-12345) != NULL);

  /* destroy removes the file */
  CHECK_RC(shmlink_stream_destroy(s), SHMLINK_OK);
  CHECK_RC(shmlink_stream_open("smoke", &missing), SHMLINK_E_NOT_FOUND);
  CHECK_RC(shmlink_stream_close(NULL), SHMLINK_OK);

  /* a sample queue with a signal table: push, open with expectations, pop, shutdown */
  {
    shmlink_signal_t table[2];
    memset(table, 0, sizeof table);
    table[0].index = 0;
    strcpy(table[0].name, "voltage");
    table[0].type = SHMLINK_SIGNAL_F64;
    strcpy(table[0].unit, "V");
    table[1].index = 1;
    strcpy(table[1].name, "steps");
    table[1].type = SHMLINK_SIGNAL_I64;

    shmlink_queue_spec_t qs;
    shmlink_queue_spec_init(&qs);
    qs.capacity = 4;
    qs.max_values = 2;
    qs.signals = table;
    qs.signal_count = 2;
    shmlink_queue_t *q = NULL, *reader = NULL;
    CHECK_RC(shmlink_queue_create("smokeq", &qs, SHMLINK_EXCLUSIVE_CREATE, &q), SHMLINK_OK);
    shmlink_queue_expect_t expect;
    shmlink_queue_expect_init(&expect);
    expect.max_values = 2;
    expect.kind = SHMLINK_QUEUE_SPSC;
    expect.signals = table;
    expect.signal_count = 2;
    CHECK_RC(shmlink_queue_open("smokeq", &expect, &reader), SHMLINK_OK);
    if (q != NULL && reader != NULL) {
      shmlink_value_t v[2];
      v[0].f = 1.5;
      v[1].i = -3;
      shmlink_sample_t out;
      memset(&out, 0, sizeof out);
      out.sequence = 7;
      out.flags = SHMLINK_SAMPLE_HAS_SEQUENCE | SHMLINK_SAMPLE_HAS_DATA;
      out.length = 2;
      out.values = v;
      CHECK_RC(shmlink_queue_push(q, &out, 10 * 1000 * 1000), SHMLINK_OK);
      CHECK(shmlink_queue_size_approx(reader) == 1);

      shmlink_value_t got[2];
      shmlink_sample_t in;
      memset(&in, 0, sizeof in);
      in.values = got;
      in.capacity = 2;
      CHECK_RC(shmlink_queue_pop(reader, &in, 10 * 1000 * 1000), SHMLINK_OK);
      CHECK(in.sequence == 7 && in.length == 2 && got[0].f == 1.5 && got[1].i == -3);
      CHECK_RC(shmlink_queue_try_pop(reader, &in), SHMLINK_E_WOULD_BLOCK);

      shmlink_queue_info_t qi;
      CHECK_RC(shmlink_queue_info(reader, &qi), SHMLINK_OK);
      CHECK(qi.capacity == 4 && qi.max_values == 2 && qi.pushed == 1 && qi.popped == 1 && qi.closed == 0);
      shmlink_signal_t sg;
      CHECK(shmlink_queue_signal_count(reader) == 2);
      CHECK_RC(shmlink_queue_signal(reader, 1, &sg), SHMLINK_OK);
      CHECK(sg.index == 1 && strcmp(sg.name, "steps") == 0 && sg.type == SHMLINK_SIGNAL_I64);

      CHECK_RC(shmlink_queue_shutdown(q), SHMLINK_OK);
      CHECK(shmlink_queue_is_shut(reader) == 1);
      CHECK_RC(shmlink_queue_try_push(q, &out), SHMLINK_E_SHUT_DOWN);
      CHECK_RC(shmlink_queue_pop(reader, &in, -1), SHMLINK_E_SHUT_DOWN);
    }
    expect.max_values = 3;
    shmlink_queue_t *wrong = NULL;
    CHECK_RC(shmlink_queue_open("smokeq", &expect, &wrong), SHMLINK_E_LAYOUT);
    CHECK(wrong == NULL && strstr(shmlink_last_error(), "smokeq") != NULL);
    CHECK_RC(shmlink_queue_close(reader), SHMLINK_OK);
    CHECK_RC(shmlink_queue_close(q), SHMLINK_OK);
    CHECK_RC(shmlink_queue_remove("smokeq"), SHMLINK_OK);
  }

  /* a loopback interface: this process reads what it writes */
  {
    shmlink_interface_spec_t is;
    shmlink_interface_spec_init(&is);
    is.out = "smokeif";
    is.in = "smokeif";
    is.capacity = 4;
    shmlink_interface_t *iface = NULL;
    CHECK_RC(shmlink_interface_new(&is, &iface), SHMLINK_OK);
    CHECK_RC(shmlink_interface_export_signal(iface, 0, "x", SHMLINK_SIGNAL_F64, "m"), SHMLINK_OK);
    CHECK_RC(shmlink_interface_open(iface), SHMLINK_OK);
    shmlink_value_t x;
    x.f = 42.0;
    CHECK_RC(shmlink_interface_write_values(iface, &x, 1, -1), SHMLINK_OK);
    shmlink_value_t y;
    shmlink_sample_t in;
    memset(&in, 0, sizeof in);
    in.values = &y;
    in.capacity = 1;
    CHECK_RC(shmlink_interface_read(iface, &in, -1), SHMLINK_OK);
    CHECK(in.length == 1 && y.f == 42.0 && in.sequence == 0);
    CHECK((in.flags & SHMLINK_SAMPLE_HAS_TS_RECEIVED) != 0);
    CHECK(shmlink_interface_next_sequence(iface) == 1);
    shmlink_peer_status_t peer;
    CHECK_RC(shmlink_interface_peer(iface, &peer), SHMLINK_OK);
    CHECK(peer.launched == 0 && peer.exited == 0);
    CHECK_RC(shmlink_interface_destroy(iface), SHMLINK_OK); /* closes: removes the output file */
  }

  if (rmdir(dir) != 0) {
    perror("rmdir (a file was left behind)");
    ++failures;
  }
  if (failures != 0) fprintf(stderr, "%d check(s) failed\n", failures);
  else printf("capi_smoke: all checks passed\n");
  return failures == 0 ? 0 : 1;
}
