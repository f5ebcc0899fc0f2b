#include "meshhook/exporter/process_metrics.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <charconv>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace meshhook::exporter {

namespace {

std::string read_file(const char* path) {
  std::ifstream in(path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

double to_double(std::string_view s) {
  double v = 0;
  std::from_chars(s.data(), s.data() + s.size(), v);
  return v;
}

// The boot time from /proc/stat ("btime <seconds>"), read once: it does not change.
double boot_time_seconds() {
  static const double btime = [] {
    const std::string stat = read_file("/proc/stat");
    const auto pos = stat.find("\nbtime ");
    if (pos == std::string::npos) return 0.0;
    const auto start = pos + 7;
    return to_double(std::string_view(stat).substr(start, stat.find('\n', start) - start));
  }();
  return btime;
}

struct ProcessSample {
  double cpu_seconds = 0;
  double virtual_bytes = 0;
  double resident_bytes = 0;
  double start_time_seconds = 0;
  double open_fds = 0;
  double max_fds = 0;
  bool ok = false;
};

ProcessSample sample_process() {
  ProcessSample s;
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  // Fields after the command name, which is in parentheses and may hold spaces: field 3
  // (state) is the first one after ")".
  const std::string stat = read_file("/proc/self/stat");
  const auto close = stat.rfind(')');
  if (close != std::string::npos && ticks > 0) {
    std::vector<std::string_view> fields;
    std::string_view rest = std::string_view(stat).substr(close + 1);
    while (!rest.empty()) {
      const auto b = rest.find_first_not_of(" \n");
      if (b == std::string_view::npos) break;
      rest.remove_prefix(b);
      const auto e = rest.find_first_of(" \n");
      fields.push_back(rest.substr(0, e));
      if (e == std::string_view::npos) break;
      rest.remove_prefix(e);
    }
    auto field = [&](std::size_t n) {
      return n - 3 < fields.size() ? to_double(fields[n - 3]) : 0.0;
    };
    s.cpu_seconds = (field(14) + field(15)) / ticks;  // utime + stime
    s.start_time_seconds = boot_time_seconds() + field(22) / ticks;
    s.virtual_bytes = field(23);
    s.ok = true;
  }
  const std::string status = read_file("/proc/self/status");
  if (const auto pos = status.find("VmRSS:"); pos != std::string::npos) {
    auto line = std::string_view(status).substr(pos + 6);
    line = line.substr(0, line.find('\n'));
    const auto b = line.find_first_not_of(" \t");
    if (b != std::string_view::npos) s.resident_bytes = to_double(line.substr(b)) * 1024;  // kB
  }
  if (DIR* dir = opendir("/proc/self/fd")) {
    double n = 0;
    while (const dirent* e = readdir(dir)) {
      if (e->d_name[0] != '.') ++n;
    }
    closedir(dir);
    s.open_fds = n - 1;  // not the descriptor of the listing itself
  }
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0) {
    s.max_fds = limit.rlim_cur == RLIM_INFINITY ? 0 : static_cast<double>(limit.rlim_cur);
  }
  return s;
}

FamilySnapshot single(std::string name, std::string help, std::string unit, MetricType type,
                      double value) {
  FamilySnapshot f;
  f.name = std::move(name);
  f.help = std::move(help);
  f.unit = std::move(unit);
  f.type = type;
  f.series.emplace_back().value = value;
  return f;
}

}  // namespace

void add_process_metrics(Registry& registry, std::string_view version, std::string_view revision) {
  FamilyOptions build_info;
  build_info.name = "meshhook_stats_build_info";
  build_info.help = "Version and revision of meshhook-stats; the value is always 1.";
  build_info.label_names = {"version", "revision"};
  registry.add_gauge(std::move(build_info)).with({version, revision}).set(1);

  registry.add_collector([](std::vector<FamilySnapshot>& out) {
    const ProcessSample s = sample_process();
    if (!s.ok) return;
    // Names and help as Prometheus' own clients write them.
    out.push_back(single("process_cpu_seconds_total",
                         "Total user and system CPU time spent in seconds.", "seconds",
                         MetricType::counter, s.cpu_seconds));
    out.push_back(single("process_open_fds", "Number of open file descriptors.", "",
                         MetricType::gauge, s.open_fds));
    out.push_back(single("process_max_fds", "Maximum number of open file descriptors.", "",
                         MetricType::gauge, s.max_fds));
    out.push_back(single("process_virtual_memory_bytes", "Virtual memory size in bytes.", "bytes",
                         MetricType::gauge, s.virtual_bytes));
    out.push_back(single("process_resident_memory_bytes", "Resident memory size in bytes.", "bytes",
                         MetricType::gauge, s.resident_bytes));
    out.push_back(single("process_start_time_seconds",
                         "Start time of the process since unix epoch in seconds.", "seconds",
                         MetricType::gauge, s.start_time_seconds));
  });
}

}  // namespace meshhook::exporter
