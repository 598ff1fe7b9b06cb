// AWS regions as written in a config: "us-east-1", "eu-central-1", "us-gov-west-1".
// Pure functions; thread-safe.
#pragma once

#include <string_view>

namespace metronome {

// Whether `region` has the shape of an AWS region name: two lowercase letters, one or more
// lowercase words, and a number, joined by '-' ("us-east-1", "ap-southeast-2", "us-gov-west-1").
// It does not say the region exists; a request to an unknown one fails with a clear error.
bool is_valid_aws_region(std::string_view region);

}  // namespace metronome
