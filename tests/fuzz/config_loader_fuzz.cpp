// libFuzzer: the YAML config loader. Any input must load or fail with a ConfigError; nothing
// else may escape, and nothing may crash.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "config.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::string path = [] {
    char name[] = "/tmp/meshhook-stats-fuzz-config.XXXXXX";
    const int fd = mkstemp(name);
    if (fd < 0) std::abort();
    close(fd);
    static std::string kept(name);
    std::atexit([] { unlink(kept.c_str()); });
    return kept;
  }();
  if (FILE* f = std::fopen(path.c_str(), "wb")) {
    std::fwrite(data, 1, size, f);
    std::fclose(f);
  }
  try {
    (void)meshhook::app::load_config(path, nullptr);
  } catch (const meshhook::app::ConfigError&) {
  }
  return 0;
}
