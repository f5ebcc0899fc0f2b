#include "meshhook/bridge/storage/run_event.h"

#include <catch2/catch.hpp>

#include "meshhook/bridge/common/rfc3339.h"
#include "meshhook/bridge/ingest/run_event_parser.h"

using namespace meshhook::bridge;

namespace {
constexpr std::int64_t kNow = 1'780'000'000'000'000;  // 2026-05-28

const char* kGood = R"({"run_id":"0b4c6a3e-1f2d-4c5b-9a8e-7d6c5b4a3f21",
  "workflow_id":"11111111-2222-4333-8444-555555555555",
  "project_id":"AAAAAAAA-bbbb-4ccc-8ddd-eeeeeeeeeeee","status":"succeeded",
  "started_at":"2026-01-31T12:00:00Z","finished_at":"2026-01-31T13:00:01.250+01:00",
  "workflow_name":"nightly export"})";
}  // namespace

TEST_CASE("uuids parse in either case and print canonical lower case", "[run_event]") {
  auto u = Uuid::parse("AAAAAAAA-bbbb-4ccc-8ddd-eeeeeeeeeeee");
  REQUIRE(u);
  CHECK(u->to_string() == "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee");
  CHECK_FALSE(Uuid::parse("aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeee"));
  CHECK_FALSE(Uuid::parse("aaaaaaaabbbb-4ccc-8ddd-eeeeeeeeeeeee"));
  CHECK_FALSE(Uuid::parse("gaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"));
  CHECK_FALSE(Uuid::parse("1; drop table x"));
}

TEST_CASE("RFC 3339 timestamps need an offset and honour it", "[run_event]") {
  CHECK(parse_rfc3339_us("1970-01-01T00:00:00Z") == 0);
  CHECK(parse_rfc3339_us("1970-01-01T01:00:00+01:00") == 0);
  CHECK(parse_rfc3339_us("1970-01-01T00:00:00.000001Z") == 1);
  CHECK(parse_rfc3339_us("1970-01-01T00:00:01.5-00:00") == 1'500'000);
  CHECK(parse_rfc3339_us("2026-02-28T23:59:59Z") == 1'772'323'199'000'000);
  CHECK_FALSE(parse_rfc3339_us("2026-02-29T00:00:00Z"));  // not a leap year
  CHECK(parse_rfc3339_us("2024-02-29T00:00:00Z"));
  CHECK_FALSE(parse_rfc3339_us("2026-01-31T12:00:00"));  // no offset
  CHECK_FALSE(parse_rfc3339_us("2026-01-31"));
  CHECK_FALSE(parse_rfc3339_us("2026-13-01T00:00:00Z"));
  CHECK_FALSE(parse_rfc3339_us("2026-01-01T24:00:00Z"));
  CHECK_FALSE(parse_rfc3339_us("2026-01-01T00:00:00.Z"));
  CHECK_FALSE(parse_rfc3339_us("2026-01-01T00:00:00Zjunk"));
}

TEST_CASE("RFC 3339 formatting round-trips", "[run_event]") {
  for (std::int64_t us : {std::int64_t{0}, std::int64_t{1}, std::int64_t{1'772'323'199'123'456}}) {
    CHECK(parse_rfc3339_us(format_rfc3339_us(us)) == us);
  }
  CHECK(format_rfc3339_us(1'772'323'199'000'000) == "2026-02-28T23:59:59.000000Z");
}

TEST_CASE("execution_time_ms rounds half up", "[run_event]") {
  RunEvent e;
  e.started_at_us = 0;
  e.finished_at_us = 1499;
  CHECK(e.execution_time_ms() == 1);
  e.finished_at_us = 1500;
  CHECK(e.execution_time_ms() == 2);
  e.finished_at_us = 499;
  CHECK(e.execution_time_ms() == 0);
}

TEST_CASE("a single run event with timestamps parses", "[ingest]") {
  RunEventParser parser;
  auto r = parser.parse(kGood, kNow);
  REQUIRE(r.ok());
  REQUIRE(r.events.size() == 1);
  const auto& e = r.events[0];
  CHECK(e.run_id.to_string() == "0b4c6a3e-1f2d-4c5b-9a8e-7d6c5b4a3f21");
  CHECK(e.project_id.to_string() == "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee");
  CHECK(e.status == RunStatus::succeeded);
  CHECK(e.duration_us() == 1'250'000);
  CHECK(e.workflow_name == "nightly export");
}

TEST_CASE("duration_ms alone ends the run now", "[ingest]") {
  RunEventParser parser;
  auto r = parser.parse(R"([{"run_id":"0b4c6a3e-1f2d-4c5b-9a8e-7d6c5b4a3f21",
    "workflow_id":"11111111-2222-4333-8444-555555555555",
    "project_id":"aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee","status":"timeout","duration_ms":1234.5}])",
                        kNow);
  REQUIRE(r.ok());
  CHECK(r.events[0].finished_at_us == kNow);
  CHECK(r.events[0].duration_us() == 1'234'500);
  CHECK(r.events[0].status == RunStatus::timeout);
}

TEST_CASE("every bad item and field of a batch is named and nothing is accepted", "[ingest]") {
  RunEventParser parser;
  auto r = parser.parse(R"([
    {"run_id":"0b4c6a3e-1f2d-4c5b-9a8e-7d6c5b4a3f21","workflow_id":"11111111-2222-4333-8444-555555555555",
     "project_id":"aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee","status":"succeeded","duration_ms":5},
    {"run_id":"nope","workflow_id":"11111111-2222-4333-8444-555555555555",
     "project_id":"aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee","status":"exploded","duration_ms":-1},
    {"run_id":"0b4c6a3e-1f2d-4c5b-9a8e-7d6c5b4a3f22","workflow_id":"11111111-2222-4333-8444-555555555555",
     "project_id":"aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee","status":"failed",
     "started_at":"2026-01-31T12:00:01Z","finished_at":"2026-01-31T12:00:00Z"},
    {"run_id":"0b4c6a3e-1f2d-4c5b-9a8e-7d6c5b4a3f23","workflow_id":"11111111-2222-4333-8444-555555555555",
     "project_id":"aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee","status":"failed",
     "started_at":"yesterday","finished_at":"2026-01-31T12:00:00Z"},
    42
  ])",
                        kNow);
  CHECK(r.events.empty());
  CHECK_FALSE(r.too_many);
  auto has = [&](long index, const std::string& field) {
    for (const auto& e : r.errors) {
      if (e.index == index && e.field == field) return true;
    }
    return false;
  };
  CHECK(has(1, "run_id"));
  CHECK(has(1, "status"));
  CHECK(has(1, "duration_ms"));
  CHECK(has(2, "finished_at"));
  CHECK(has(3, "started_at"));
  CHECK(has(4, ""));
  CHECK_FALSE(has(0, "run_id"));
}

TEST_CASE("a run longer than 400 days by its timestamps is refused like one by duration_ms",
          "[ingest]") {
  RunEventParser parser;
  const std::string ids =
      R"("run_id":"0b4c6a3e-1f2d-4c5b-9a8e-7d6c5b4a3f21","workflow_id":"11111111-2222-4333-8444-555555555555",)"
      R"("project_id":"aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee","status":"succeeded",)";
  auto epoch = parser.parse(
      "{" + ids + R"("started_at":"1970-01-01T00:00:00Z","finished_at":"2026-01-31T12:00:00Z"})",
      kNow);
  CHECK(epoch.events.empty());
  REQUIRE(epoch.errors.size() == 1);
  CHECK(epoch.errors[0].field == "finished_at");
  CHECK(epoch.errors[0].reason.find("400 days") != std::string::npos);
  // 400 days exactly is still a run.
  auto longest = parser.parse(
      "{" + ids + R"("started_at":"2025-01-01T00:00:00Z","finished_at":"2026-02-05T00:00:00Z"})",
      kNow);
  CHECK(longest.errors.empty());
  CHECK(longest.events.size() == 1);
}

TEST_CASE("missing fields are reported as required", "[ingest]") {
  RunEventParser parser;
  auto r = parser.parse("{}", kNow);
  REQUIRE(r.errors.size() == 5);  // three ids, status, duration
  CHECK(r.errors[0].reason == "is required");
}

TEST_CASE("malformed JSON, empty batches and oversized batches are refused", "[ingest]") {
  RunEventParser parser(RunEventParserOptions{2, 200});
  CHECK(parser.parse("{not json", kNow).errors.at(0).reason.find("not valid JSON") !=
        std::string::npos);
  CHECK(parser.parse("[]", kNow).errors.at(0).reason == "the batch is empty");
  auto r = parser.parse("[{},{},{}]", kNow);
  CHECK(r.too_many);
}

TEST_CASE("a run_id twice in one batch is refused", "[ingest]") {
  RunEventParser parser;
  const std::string one =
      R"({"run_id":"0b4c6a3e-1f2d-4c5b-9a8e-7d6c5b4a3f21","workflow_id":"11111111-2222-4333-8444-555555555555","project_id":"aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee","status":"succeeded","duration_ms":5})";
  auto r = parser.parse("[" + one + "," + one + "]", kNow);
  REQUIRE(r.errors.size() == 1);
  CHECK(r.errors[0].index == 1);
  CHECK(r.errors[0].field == "run_id");
}

TEST_CASE("duration_ms that contradicts the timestamps is refused", "[ingest]") {
  RunEventParser parser;
  auto r = parser.parse(
      R"({"run_id":"0b4c6a3e-1f2d-4c5b-9a8e-7d6c5b4a3f21","workflow_id":"11111111-2222-4333-8444-555555555555","project_id":"aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee","status":"succeeded","started_at":"2026-01-31T12:00:00Z","finished_at":"2026-01-31T12:00:01Z","duration_ms":5000})",
      kNow);
  REQUIRE(r.errors.size() == 1);
  CHECK(r.errors[0].field == "duration_ms");
}

TEST_CASE("a workflow_name Postgres could not store is refused", "[ingest]") {
  RunEventParser parser;
  const std::string body =
      R"({"run_id":"0b4c6a3e-1f2d-4c5b-9a8e-7d6c5b4a3f21","workflow_id":"11111111-2222-4333-8444-555555555555","project_id":"aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee","status":"succeeded","duration_ms":5,"workflow_name":"a\u0000b"})";
  auto r = parser.parse(body, kNow);
  REQUIRE(r.errors.size() == 1);
  CHECK(r.errors[0].field == "workflow_name");
  CHECK(r.errors[0].reason == "must not contain the character U+0000");
}

namespace {

// One run event with the given extra members (queued_at, steps), started at 12:00:00.
std::string run_with(const std::string& extra) {
  return R"({"run_id":"0b4c6a3e-1f2d-4c5b-9a8e-7d6c5b4a3f21",)"
         R"("workflow_id":"11111111-2222-4333-8444-555555555555",)"
         R"("project_id":"aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee","status":"failed",)"
         R"("started_at":"2026-01-31T12:00:00Z","finished_at":"2026-01-31T12:00:10Z")" +
         (extra.empty() ? "" : "," + extra) + "}";
}

// A step with the members in extra and, for those extra does not give, good defaults (JSON
// objects keep the first of two equal keys, so none is given twice).
std::string step(const std::string& id, const std::string& extra = "") {
  std::string out = R"({"id":")" + id + "\"";
  const std::pair<const char*, const char*> defaults[] = {
      {"started_at", "\"2026-01-31T12:00:01Z\""},
      {"finished_at", "\"2026-01-31T12:00:02.5Z\""},
      {"status", "\"succeeded\""}};
  for (const auto& [key, value] : defaults) {
    if (extra.find("\"" + std::string(key) + "\"") == std::string::npos) {
      out += ",\"" + std::string(key) + "\":" + value;
    }
  }
  return out + (extra.empty() ? "" : "," + extra) + "}";
}

// The one error of a refused body, as "index field: reason".
std::string only_error(RunEventParser& parser, const std::string& body) {
  auto r = parser.parse(body, kNow);
  CHECK(r.events.empty());
  if (r.errors.size() != 1) return "expected one error, got " + std::to_string(r.errors.size());
  return std::to_string(r.errors[0].index) + " " + r.errors[0].field + ": " + r.errors[0].reason;
}

}  // namespace

TEST_CASE("a run event carries its queue time and its steps", "[ingest]") {
  RunEventParser parser;
  auto r = parser.parse(
      run_with(R"("queued_at":"2026-01-31T11:59:58.750Z","steps":[)" + step("fetch") + "," +
               step("notify", R"("type":"http","status":"failed","attempts":3)") + "]"),
      kNow);
  REQUIRE(r.ok());
  const RunEvent& e = r.events.at(0);
  CHECK(e.queued_at_us == *parse_rfc3339_us("2026-01-31T11:59:58.750Z"));
  CHECK(e.queue_wait_us() == 1'250'000);
  CHECK(e.has_details());
  REQUIRE(e.steps.size() == 2);
  CHECK(e.steps[0].id == "fetch");
  CHECK(e.steps[0].type.empty());
  CHECK(e.steps[0].status == StepStatus::succeeded);
  CHECK(e.steps[0].attempts == 1);  // the default
  CHECK(e.steps[0].started_at_us == *parse_rfc3339_us("2026-01-31T12:00:01Z"));
  CHECK(e.steps[0].duration_us() == 1'500'000);
  CHECK(e.steps[1].id == "notify");
  CHECK(e.steps[1].type == "http");
  CHECK(e.steps[1].status == StepStatus::failed);
  CHECK(e.steps[1].attempts == 3);
}

TEST_CASE("a run event without queued_at or steps has no details", "[ingest]") {
  RunEventParser parser;
  auto r = parser.parse(run_with(R"("queued_at":null,"steps":null)"), kNow);
  REQUIRE(r.ok());
  CHECK_FALSE(r.events[0].has_details());
  auto empty = parser.parse(run_with(R"("steps":[])"), kNow);
  REQUIRE(empty.ok());
  CHECK_FALSE(empty.events[0].has_details());
}

TEST_CASE("queued_at must be a time not after started_at", "[ingest]") {
  RunEventParser parser;
  CHECK(only_error(parser, run_with(R"("queued_at":"2026-01-31T12:00:00.000001Z")")) ==
        "0 queued_at: must not be after started_at");
  CHECK(only_error(parser, run_with(R"("queued_at":"soon")"))
            .starts_with("0 queued_at: must be "
                         "an RFC 3339"));
  CHECK(only_error(parser, run_with(R"("queued_at":1769860800)")) ==
        "0 queued_at: must be a string");
  CHECK(only_error(parser, run_with(R"("queued_at":"2024-01-01T00:00:00Z")")) ==
        "0 queued_at: must be at most 400 days before started_at");
  // Equal to started_at: no wait at all.
  auto r = parser.parse(run_with(R"("queued_at":"2026-01-31T12:00:00Z")"), kNow);
  REQUIRE(r.ok());
  CHECK(r.events[0].queue_wait_us() == 0);
}

TEST_CASE("queued_at is checked against a started_at derived from duration_ms", "[ingest]") {
  RunEventParser parser;
  const std::string body =
      R"({"run_id":"0b4c6a3e-1f2d-4c5b-9a8e-7d6c5b4a3f21","workflow_id":"11111111-2222-4333-8444-555555555555",)"
      R"("project_id":"aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee","status":"succeeded",)"
      R"("finished_at":"2026-01-31T12:00:10Z","duration_ms":10000,"queued_at":"2026-01-31T12:00:05Z"})";
  CHECK(only_error(parser, body) == "0 queued_at: must not be after started_at");
}

TEST_CASE("each bad step field is named by event index and step position", "[ingest]") {
  RunEventParser parser;
  const std::string long_id(201, 'x');
  const std::string long_type(101, 't');
  CHECK(only_error(parser, run_with(R"("steps":{})")) == "0 steps: must be an array of steps");
  CHECK(only_error(parser, run_with(R"("steps":[42])")) == "0 steps[0]: must be a JSON object");
  CHECK(only_error(parser, run_with(R"("steps":[)" + step(long_id) + "]")) ==
        "0 steps[0].id: must be at most 200 bytes");
  CHECK(only_error(parser, run_with(R"("steps":[)" + step("") + "]")) ==
        "0 steps[0].id: must not be empty");
  CHECK(only_error(parser, run_with(R"("steps":[)" + step("a\\u0000b") + "]")) ==
        "0 steps[0].id: must not contain the character U+0000");
  CHECK(only_error(parser, run_with(R"("steps":[)" + step("a", R"("type":")" + long_type + "\"") +
                                    "]")) == "0 steps[0].type: must be at most 100 bytes");
  CHECK(only_error(parser, run_with(R"("steps":[)" + step("a") + "," +
                                    step("b", R"("status":"canceled")") + "]")) ==
        "0 steps[1].status: must be succeeded or failed");
  for (const char* attempts : {"0", "1001", "1.5", "\"2\"", "-1", "true"}) {
    CHECK(only_error(parser, run_with(R"("steps":[)" +
                                      step("a", std::string("\"attempts\":") + attempts) + "]")) ==
          "0 steps[0].attempts: must be an integer from 1 to 1000");
  }
  CHECK(only_error(parser, run_with(R"("steps":[{"id":"a","status":"succeeded",)"
                                    R"("finished_at":"2026-01-31T12:00:02Z"}])")) ==
        "0 steps[0].started_at: is required");
  CHECK(only_error(parser, run_with(R"("steps":[{"id":"a","status":"succeeded",)"
                                    R"("started_at":"2026-01-31T12:00:03Z",)"
                                    R"("finished_at":"2026-01-31T12:00:02Z"}])")) ==
        "0 steps[0].finished_at: must not be before started_at");
  CHECK(only_error(parser, run_with(R"("steps":[)" + step("a") + "," + step("b") + "," + step("a") +
                                    "]")) == "0 steps[2].id: appears twice in this run");
}

TEST_CASE("a bad step in one event of a batch refuses the whole batch", "[ingest]") {
  RunEventParser parser;
  const std::string good = run_with(R"("steps":[)" + step("a") + "]");
  std::string bad = run_with(R"("steps":[)" + step("a", R"("attempts":0)") + "]");
  bad.replace(bad.find("3f21"), 4, "3f22");
  auto r = parser.parse("[" + good + "," + bad + "]", kNow);
  CHECK(r.events.empty());
  REQUIRE(r.errors.size() == 1);
  CHECK(r.errors[0].index == 1);
  CHECK(r.errors[0].field == "steps[0].attempts");
}

TEST_CASE("a run may carry at most 500 steps", "[ingest]") {
  RunEventParser parser;
  auto steps = [](int n) {
    std::string out;
    for (int i = 0; i < n; ++i) out += (i ? "," : "") + step("s" + std::to_string(i));
    return out;
  };
  auto most = parser.parse(run_with(R"("steps":[)" + steps(500) + "]"), kNow);
  REQUIRE(most.ok());
  CHECK(most.events[0].steps.size() == 500);
  CHECK(only_error(parser, run_with(R"("steps":[)" + steps(501) + "]")) ==
        "0 steps: must have at most 500 steps (this run has 501)");
}

TEST_CASE("queued_at is judged beside other bad fields of the same event", "[ingest]") {
  RunEventParser parser;
  std::string body = run_with(R"("queued_at":"2026-01-31T12:00:01Z")");
  body.replace(body.find("\"failed\""), 8, "\"exploded\"");
  auto r = parser.parse(body, kNow);
  CHECK(r.events.empty());
  REQUIRE(r.errors.size() == 2);
  CHECK(r.errors[0].field == "status");
  CHECK(r.errors[1].field == "queued_at");
}
