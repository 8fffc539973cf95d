/* SPDX-License-Identifier: MIT */
/* Calls every name shmlink.h keeps for older programs; never linked or run. The test
 * capi_deprecated_names (capi_deprecated_names.cmake) compiles it and checks that the compiler
 * warns about each call with the text the header promises. */
#include <shmlink.h>

int call_the_older_names(shmlink_interface_t *iface, const shmlink_interface_spec_t *spec, shmlink_interface_t **out);

int call_the_older_names(shmlink_interface_t *iface, const shmlink_interface_spec_t *spec, shmlink_interface_t **out) {
  int rc = 0;
  rc |= shmlink_stream_remove("s");
  rc |= shmlink_queue_remove("q");
  rc |= shmlink_interface_new(spec, out);
  rc |= shmlink_interface_open(iface);
  rc |= shmlink_interface_is_open(iface);
  rc |= shmlink_interface_destroy(iface);
  return rc;
}
