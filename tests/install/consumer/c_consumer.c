/* A C program against an installed shmlink, built with pkg-config. */
#include <shmlink.h>

#include <stdio.h>

int main(void) {
  shmlink_stream_spec_t spec;
  shmlink_stream_t *s = NULL;
  float frame[4] = {7, 8, 9, 10};
  float back[4];
  shmlink_frame_info_t info;
  shmlink_stream_spec_init(&spec);
  spec.naxis = 1;
  spec.shape[0] = 4;
  spec.dtype = SHMLINK_DTYPE_F32;
  if (shmlink_stream_create("c_consumer", &spec, SHMLINK_PURGE_AND_CREATE, &s) != SHMLINK_OK) {
    fprintf(stderr, "%s\n", shmlink_last_error());
    return 1;
  }
  if (shmlink_stream_write(s, frame, sizeof frame, -1) != SHMLINK_OK) return 2;
  if (shmlink_stream_read_copy(s, back, sizeof back, &info) != SHMLINK_OK) return 3;
  printf("c consumer: cnt0=%llu first=%g\n", (unsigned long long)info.cnt0, (double)back[0]);
  if (shmlink_stream_close(s) != SHMLINK_OK) return 4;
  return shmlink_stream_destroy("c_consumer") == SHMLINK_OK ? 0 : 5; /* removes the file by name */
}
