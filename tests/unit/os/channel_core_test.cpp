// SPDX-License-Identifier: MIT
// The core owns what every channel kind shares (issue 20, house item 1): the channel directory,
// the name and permission rules, kForever and the name limits come from <shmlink/channel.hpp>
// (through segment.hpp), and no channel header includes another channel's header.
#include <shmlink/interface.hpp>
#include <shmlink/memif.hpp>
#include <shmlink/queue.hpp>

#include <gtest/gtest.h>

// The stream header's types, declared here with another meaning: this file does not compile if
// any channel header above brings in stream.hpp.
namespace shmlink {
struct Stream {
  int not_a_stream = 0;
};
struct StreamSpec {
  int not_a_spec = 0;
};
}  // namespace shmlink

namespace {

static_assert(shmlink::kMaxChannelName == 79);
static_assert(shmlink::kMaxStreamName == shmlink::kMaxChannelName);
static_assert(shmlink::kMaxQueueName == shmlink::kMaxChannelName);

TEST(ChannelCore, ChannelHeadersGetTheSharedRulesWithoutTheStreamHeader) {
  EXPECT_EQ(shmlink::kForever, std::chrono::nanoseconds::max());
  EXPECT_FALSE(shmlink::stream_directory().empty());
  EXPECT_THROW(shmlink::check_channel_name("queue", "a/b", "a/b", shmlink::kMaxChannelName), shmlink::Error);
  EXPECT_THROW(shmlink::check_channel_permissions(0755, "/dev/shm/x.queue.shm"), shmlink::Error);
  EXPECT_EQ(shmlink::escape_name("a\nb"), "a\\nb");
  const shmlink::Stream local{7};
  EXPECT_EQ(local.not_a_stream, 7);
}

}  // namespace
