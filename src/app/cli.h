// The `metronome` command line. Exit codes: 0 ok, 2 usage or configuration error, 1 runtime
// failure.
#pragma once

namespace metronome {

int run_cli(int argc, char** argv);

}  // namespace metronome
