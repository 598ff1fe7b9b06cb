#include "aws/aws_region.h"

#include <algorithm>
#include <vector>

namespace metronome {

bool is_valid_aws_region(std::string_view region) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (true) {
    size_t dash = region.find('-', start);
    parts.push_back(region.substr(start, dash == std::string_view::npos ? dash : dash - start));
    if (dash == std::string_view::npos) break;
    start = dash + 1;
  }
  if (parts.size() < 3) return false;
  auto all = [](std::string_view s, auto pred) {
    return !s.empty() && std::all_of(s.begin(), s.end(), pred);
  };
  auto lower = [](char c) { return c >= 'a' && c <= 'z'; };
  auto digit = [](char c) { return c >= '0' && c <= '9'; };
  if (parts.front().size() != 2 || !all(parts.front(), lower)) return false;
  for (size_t i = 1; i + 1 < parts.size(); ++i) {
    if (!all(parts[i], lower)) return false;
  }
  return parts.back().size() <= 2 && all(parts.back(), digit);
}

}  // namespace metronome
