// metronome: parse the command line and hand over to app/.
#include "app/cli.h"

int main(int argc, char** argv) {
  return metronome::run_cli(argc, argv);
}
