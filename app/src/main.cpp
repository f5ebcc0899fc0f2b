// meshhook-stats: see cli.cpp for the command line and service.cpp for the wiring.
#include <string>
#include <vector>

#include "cli.h"

extern char** environ;

int main(int argc, char** argv) {
  return meshhook::app::run(std::vector<std::string>(argv, argv + argc), environ);
}
