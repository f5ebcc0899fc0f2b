#include "meshhook/bridge/ingest/run_event_parser.h"

#include <simdjson.h>

#include <cmath>
#include <string>
#include <unordered_set>

#include "meshhook/bridge/common/rfc3339.h"
namespace meshhook::bridge {

struct RunEventParser::Impl {
  simdjson::dom::parser parser;
};

RunEventParser::RunEventParser(RunEventParserOptions options)
    : options_(options), impl_(new Impl) {}

RunEventParser::~RunEventParser() { delete impl_; }

namespace {

// Largest duration accepted: 400 days, far beyond any workflow run and far from overflow.
constexpr double kMaxDurationMs = 400.0 * 24 * 3600 * 1000;

constexpr const char* kTimestampFormat =
    "must be an RFC 3339 date-time with an offset, e.g. 2026-01-31T12:00:00.250Z";

// Checks the members of one object of the batch: an event, or (with a prefix such as
// "steps[2]") one of its steps, whose errors then name the step ("steps[2].id").
class ItemChecker {
 public:
  ItemChecker(long index, RunEventParseResult& result, std::string prefix = {})
      : index_(index), result_(result), prefix_(std::move(prefix)) {}

  void fail(std::string field, std::string reason) {
    ok_ = false;
    if (result_.errors.size() < RunEventParseResult::kMaxErrors) {
      if (!prefix_.empty()) field = field.empty() ? prefix_ : prefix_ + "." + field;
      result_.errors.push_back({index_, std::move(field), std::move(reason)});
    }
  }

  // A required or optional string member; nullopt when absent (or null, if optional).
  std::optional<std::string_view> string(simdjson::dom::object obj, const char* field,
                                         bool required) {
    simdjson::dom::element el;
    if (obj[field].get(el) != simdjson::SUCCESS || (!required && el.is_null())) {
      if (required) fail(field, "is required");
      return std::nullopt;
    }
    std::string_view s;
    if (el.get(s) != simdjson::SUCCESS) {
      fail(field, "must be a string");
      return std::nullopt;
    }
    return s;
  }

  void uuid(simdjson::dom::object obj, const char* field, Uuid& out) {
    if (auto s = string(obj, field, true)) {
      if (auto u = Uuid::parse(*s)) {
        out = *u;
      } else {
        fail(field, "must be a uuid (8-4-4-4-12 hexadecimal digits)");
      }
    }
  }

  std::optional<std::int64_t> timestamp(simdjson::dom::object obj, const char* field,
                                        bool required = false) {
    auto s = string(obj, field, required);
    if (!s) return std::nullopt;
    auto us = parse_rfc3339_us(*s);
    if (!us) {
      fail(field, kTimestampFormat);
      return std::nullopt;
    }
    if (*us < 0) {
      fail(field, "must not be before 1970-01-01");
      return std::nullopt;
    }
    return us;
  }

  // A string that Postgres text can hold, of at most max_bytes (and at least one when
  // required); nullopt when absent or refused.
  std::optional<std::string_view> text(simdjson::dom::object obj, const char* field, bool required,
                                       std::size_t max_bytes) {
    auto s = string(obj, field, required);
    if (!s) return std::nullopt;
    if (s->size() > max_bytes) {
      fail(field, "must be at most " + std::to_string(max_bytes) + " bytes");
    } else if (required && s->empty()) {
      fail(field, "must not be empty");
    } else if (s->find('\0') != std::string_view::npos) {
      // Postgres text cannot hold it; refused here rather than failing the write later.
      fail(field, "must not contain the character U+0000");
    } else {
      return s;
    }
    return std::nullopt;
  }

  /// The item is bad, for reasons already recorded (by a nested checker).
  void fail_quietly() noexcept { ok_ = false; }

  bool ok() const noexcept { return ok_; }
  long index() const noexcept { return index_; }
  RunEventParseResult& result() noexcept { return result_; }

 private:
  long index_;
  RunEventParseResult& result_;
  std::string prefix_;
  bool ok_ = true;
};

// One element of steps; false (with the reasons recorded) when it is bad.
bool parse_step(simdjson::dom::element item, std::size_t position, ItemChecker& run,
                RunStep& step) {
  ItemChecker check(run.index(), run.result(), "steps[" + std::to_string(position) + "]");
  simdjson::dom::object obj;
  if (item.get(obj) != simdjson::SUCCESS) {
    check.fail("", "must be a JSON object");
    return false;
  }
  if (auto id = check.text(obj, "id", true, RunStep::kMaxIdBytes)) step.id.assign(*id);
  if (auto type = check.text(obj, "type", false, RunStep::kMaxTypeBytes)) step.type.assign(*type);
  if (auto s = check.string(obj, "status", true)) {
    if (auto st = parse_step_status(*s)) {
      step.status = *st;
    } else {
      check.fail("status", "must be succeeded or failed");
    }
  }
  simdjson::dom::element a;
  if (obj["attempts"].get(a) == simdjson::SUCCESS && !a.is_null()) {
    std::int64_t attempts = 0;
    if (a.get(attempts) != simdjson::SUCCESS || attempts < 1 || attempts > RunStep::kMaxAttempts) {
      check.fail("attempts",
                 "must be an integer from 1 to " + std::to_string(RunStep::kMaxAttempts));
    } else {
      step.attempts = static_cast<std::uint32_t>(attempts);
    }
  }
  const auto started = check.timestamp(obj, "started_at", true);
  const auto finished = check.timestamp(obj, "finished_at", true);
  if (started && finished) {
    if (*finished < *started) {
      check.fail("finished_at", "must not be before started_at");
    } else if (static_cast<double>(*finished - *started) > kMaxDurationMs * 1000.0) {
      check.fail("finished_at", "must be at most 400 days after started_at");
    }
    step.started_at_us = *started;
    step.finished_at_us = *finished;
  }
  return check.ok();
}

// The optional steps array: at most RunEvent::kMaxSteps, each valid, their ids unique.
void parse_steps(simdjson::dom::object obj, ItemChecker& check, RunEvent& event) {
  simdjson::dom::element el;
  if (obj["steps"].get(el) != simdjson::SUCCESS || el.is_null()) return;
  simdjson::dom::array steps;
  if (el.get(steps) != simdjson::SUCCESS) {
    check.fail("steps", "must be an array of steps");
    return;
  }
  if (steps.size() > RunEvent::kMaxSteps) {
    check.fail("steps", "must have at most " + std::to_string(RunEvent::kMaxSteps) +
                            " steps (this run has " + std::to_string(steps.size()) + ")");
    return;
  }
  event.steps.resize(steps.size());
  bool all_ok = true;
  std::size_t position = 0;
  for (simdjson::dom::element item : steps) {
    all_ok &= parse_step(item, position, check, event.steps[position]);
    ++position;
  }
  if (!all_ok) {
    check.fail_quietly();
    return;
  }
  // One row per (run, step): a step reported twice would be refused by the table.
  std::unordered_set<std::string_view> seen;
  seen.reserve(event.steps.size());
  for (std::size_t i = 0; i < event.steps.size(); ++i) {
    if (!seen.insert(event.steps[i].id).second) {
      check.fail("steps[" + std::to_string(i) + "].id", "appears twice in this run");
    }
  }
}

// queued_at, once the run's started_at is known: not after it, and not absurdly before.
void check_queued_at(std::int64_t queued, ItemChecker& check, RunEvent& event) {
  if (queued == 0) {
    check.fail("queued_at", "must be after 1970-01-01T00:00:00Z");
  } else if (queued > event.started_at_us) {
    check.fail("queued_at", "must not be after started_at");
  } else if (static_cast<double>(event.started_at_us - queued) > kMaxDurationMs * 1000.0) {
    check.fail("queued_at", "must be at most 400 days before started_at");
  } else {
    event.queued_at_us = queued;
  }
}

bool parse_item(simdjson::dom::element item, long index, std::int64_t now_us,
                const RunEventParserOptions& options, RunEventParseResult& result,
                RunEvent& event) {
  ItemChecker check(index, result);
  simdjson::dom::object obj;
  if (item.get(obj) != simdjson::SUCCESS) {
    check.fail("", "must be a JSON object");
    return false;
  }
  check.uuid(obj, "run_id", event.run_id);
  check.uuid(obj, "workflow_id", event.workflow_id);
  check.uuid(obj, "project_id", event.project_id);

  if (auto s = check.string(obj, "status", true)) {
    if (auto st = parse_run_status(*s)) {
      event.status = *st;
    } else {
      check.fail("status", "must be one of succeeded, failed, canceled, timeout");
    }
  }

  if (auto name = check.text(obj, "workflow_name", false, options.max_workflow_name_length)) {
    event.workflow_name.assign(*name);
  }
  parse_steps(obj, check, event);

  const std::size_t errors_before_times = result.errors.size();
  const auto started = check.timestamp(obj, "started_at");
  const auto finished = check.timestamp(obj, "finished_at");
  const auto queued = check.timestamp(obj, "queued_at");
  std::optional<std::int64_t> duration_us;
  simdjson::dom::element d;
  if (obj["duration_ms"].get(d) == simdjson::SUCCESS && !d.is_null()) {
    double ms;
    if (d.get(ms) != simdjson::SUCCESS) {
      check.fail("duration_ms", "must be a number");
    } else if (!std::isfinite(ms) || ms < 0) {
      check.fail("duration_ms", "must not be negative");
    } else if (ms > kMaxDurationMs) {
      check.fail("duration_ms", "must be at most 400 days");
    } else {
      duration_us = std::llround(ms * 1000.0);
    }
  }
  // Combining the times only makes sense when each of them was readable.
  if (result.errors.size() != errors_before_times) return false;

  if (started && finished) {
    if (*finished < *started) {
      check.fail("finished_at", "must not be before started_at");
    } else if (static_cast<double>(*finished - *started) > kMaxDurationMs * 1000.0) {
      check.fail("finished_at", "must be at most 400 days after started_at");
    } else if (duration_us && std::llabs((*finished - *started) - *duration_us) > 1000) {
      check.fail("duration_ms", "disagrees with finished_at - started_at");
    }
    event.started_at_us = *started;
    event.finished_at_us = *finished;
  } else if (duration_us) {
    if (started) {
      event.started_at_us = *started;
      event.finished_at_us = *started + *duration_us;
    } else {
      event.finished_at_us = finished ? *finished : now_us;
      event.started_at_us = event.finished_at_us - *duration_us;
    }
  } else if (started || finished) {
    check.fail(started ? "finished_at" : "started_at",
               "is required with " + std::string(started ? "started_at" : "finished_at") +
                   " (or give duration_ms)");
  } else {
    check.fail("duration_ms", "is required unless started_at and finished_at are given");
  }
  // queued_at is judged against started_at only when the run's times made sense.
  if (queued && result.errors.size() == errors_before_times) {
    check_queued_at(*queued, check, event);
  }
  return check.ok();
}

}  // namespace

RunEventParseResult RunEventParser::parse(std::string_view body, std::int64_t now_us) {
  RunEventParseResult result;
  simdjson::dom::element root;
  const simdjson::padded_string padded(body);
  if (auto error = impl_->parser.parse(padded).get(root); error != simdjson::SUCCESS) {
    result.errors.push_back(
        {-1, "", std::string("the body is not valid JSON: ") + simdjson::error_message(error)});
    return result;
  }

  simdjson::dom::array array;
  const bool is_batch = root.get(array) == simdjson::SUCCESS;
  const std::size_t n = is_batch ? array.size() : 1;
  if (is_batch && n == 0) {
    result.errors.push_back({-1, "", "the batch is empty"});
    return result;
  }
  if (n > options_.max_batch) {
    result.too_many = true;
    result.errors.push_back({-1, "",
                             "the batch has " + std::to_string(n) + " events; the limit is " +
                                 std::to_string(options_.max_batch)});
    return result;
  }

  result.events.resize(n);
  bool all_ok = true;
  auto check_one = [&](simdjson::dom::element item, long index) {
    all_ok &= parse_item(item, is_batch ? index : 0, now_us, options_, result,
                         result.events[static_cast<std::size_t>(index)]);
  };
  if (is_batch) {
    long index = 0;
    for (simdjson::dom::element item : array) check_one(item, index++);
  } else {
    check_one(root, 0);
  }

  if (all_ok && n > 1) {
    // A run reported twice in one request would be counted twice by the histograms.
    std::unordered_set<std::string_view> seen;
    seen.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
      const auto& b = result.events[i].run_id.bytes;
      if (!seen.emplace(reinterpret_cast<const char*>(b.data()), b.size()).second) {
        all_ok = false;
        result.errors.push_back({static_cast<long>(i), "run_id", "appears twice in this batch"});
      }
    }
  }
  if (!all_ok) result.events.clear();
  return result;
}

}  // namespace meshhook::bridge
