// The dashboard's files: web/*.{html,css,js} and uPlot's dist files (node_modules/uplot, pinned
// in package.json), embedded in the binary at build time by web/embed_assets.cmake, so the page
// never fetches anything from elsewhere and needs nothing installed beside the binary.
#pragma once

#include <span>
#include <string_view>

namespace metronome {

struct WebAsset {
  std::string_view name;          // "index.html", "dashboard.js", "uPlot.iife.min.js", ...
  std::string_view content_type;  // "text/html; charset=utf-8", ...
  std::string_view body;
};

// Every embedded file (defined in the generated web_assets.cc).
std::span<const WebAsset> web_assets();

// The file called `name`, or null.
const WebAsset* find_web_asset(std::string_view name);

}  // namespace metronome
