#include "meshhook/bridge/ingest/ingest_api.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "meshhook/exporter/exposition.h"

using namespace meshhook;
using bridge::HttpRequest;

namespace {

// A sink that records what it was given and answers as told: the logic under test is the
// handler's, and the real spool has its own tests.
class RecordingSink final : public bridge::RunSink {
 public:
  Outcome next = Outcome::accepted;
  std::size_t kept = 0;
  Result accept(std::span<const bridge::RunEvent> events) override {
    if (next == Outcome::accepted) kept += events.size();
    return {next, next == Outcome::accepted ? "" : "refused"};
  }
};

// "s3cret" writes any project; "tenant-a" only project aaaaaaaa-....
bridge::TokenSet tokens() {
  const auto a = bridge::TokenSet::sha256_hex("tenant-a");
  return bridge::TokenSet({bridge::TokenSet::sha256_hex("s3cret"), a},
                          {{a, {"AAAAAAAA-bbbb-4ccc-8ddd-eeeeeeeeeeee"}}});
}

struct Fixture {
  exporter::Registry registry;
  exporter::RunMetrics metrics{registry, {}};
  RecordingSink sink;
  bridge::IngestApi api{bridge::IngestOptions{1024, 10}, tokens(), sink, metrics, registry};

  bridge::HttpResponse post(std::string body, std::string auth = "Bearer s3cret",
                            std::string type = "application/json") {
    HttpRequest r;
    r.method = "POST";
    r.path = "/api/v1/runs";
    r.body = body;
    r.header = [auth, type](std::string_view name) -> std::string_view {
      if (name == "Authorization") return auth;
      if (name == "Content-Type") return type;
      return {};
    };
    return api.handle(r);
  }

  std::string exposition() {
    std::string out;
    exporter::serialize(out, registry.collect(), exporter::ExpositionFormat::prometheus_text);
    return out;
  }
};

const std::string kRun =
    R"({"run_id":"0b4c6a3e-1f2d-4c5b-9a8e-7d6c5b4a3f21","workflow_id":"11111111-2222-4333-8444-555555555555","project_id":"aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee","status":"succeeded","duration_ms":1500})";

}  // namespace

TEST_CASE("ingest accepts a valid run and observes it", "[ingest]") {
  Fixture f;
  auto r = f.post(kRun);
  CHECK(r.status == 202);
  CHECK(nlohmann::json::parse(r.body)["accepted"] == 1);
  CHECK(f.sink.kept == 1);
  const auto text = f.exposition();
  CHECK(text.find("meshhook_workflow_runs_total{tenant=\"aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee\","
                  "workflow=\"11111111-2222-4333-8444-555555555555\",status=\"succeeded\"} 1") !=
        std::string::npos);
}

TEST_CASE("ingest without a valid token answers 401 and keeps nothing", "[ingest]") {
  Fixture f;
  for (const std::string auth : {"", "Bearer wrong", "Basic czNjcmV0", "Bearer"}) {
    auto r = f.post(kRun, auth);
    CHECK(r.status == 401);
    auto body = nlohmann::json::parse(r.body);
    CHECK(body["error"] == "unauthorized");
    CHECK(body.contains("message"));
  }
  CHECK(f.sink.kept == 0);
}

TEST_CASE("ingest refuses other content types with 415", "[ingest]") {
  Fixture f;
  CHECK(f.post(kRun, "Bearer s3cret", "text/plain").status == 415);
  CHECK(f.post(kRun, "Bearer s3cret", "application/json; charset=utf-8").status == 202);
  CHECK(f.sink.kept == 1);
}

TEST_CASE("ingest refuses bodies and batches over the limits with 413", "[ingest]") {
  Fixture f;
  CHECK(f.post(std::string(2000, ' ') + kRun).status == 413);
  std::string batch = "[";
  for (int i = 0; i < 11; ++i) batch += (i ? "," : "") + std::string("{}");
  batch += "]";
  CHECK(f.post(batch).status == 413);
  CHECK(f.sink.kept == 0);
}

TEST_CASE("ingest answers 400 with details naming each bad field", "[ingest]") {
  Fixture f;
  auto r = f.post(
      R"({"run_id":"x","workflow_id":"11111111-2222-4333-8444-555555555555","project_id":"aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee","status":"succeeded","duration_ms":-3})");
  REQUIRE(r.status == 400);
  auto body = nlohmann::json::parse(r.body);
  CHECK(body["error"] == "invalid_run_event");
  REQUIRE(body["details"].size() == 2);
  CHECK(body["details"][0]["index"] == 0);
  CHECK(body["details"][0]["field"] == "run_id");
  CHECK(body["details"][1]["field"] == "duration_ms");
  CHECK(f.sink.kept == 0);
  CHECK(f.exposition().find("meshhook_workflow_runs_total{") == std::string::npos);
}

TEST_CASE("a full spool answers 503 with Retry-After and observes nothing", "[ingest]") {
  Fixture f;
  f.sink.next = bridge::RunSink::Outcome::full;
  auto r = f.post(kRun);
  CHECK(r.status == 503);
  bool retry_after = false;
  for (auto& [k, v] : r.headers) retry_after |= k == "Retry-After";
  CHECK(retry_after);
  CHECK(f.exposition().find("meshhook_workflow_runs_total{") == std::string::npos);
}

TEST_CASE("ingest only takes POST", "[ingest]") {
  Fixture f;
  HttpRequest r;
  r.method = "GET";
  r.header = [](std::string_view) { return std::string_view(); };
  CHECK(f.api.handle(r).status == 405);
}

TEST_CASE("token sets match any configured token and nothing else", "[auth]") {
  bridge::TokenSet tokens(
      {bridge::TokenSet::sha256_hex("old"), bridge::TokenSet::sha256_hex("new")});
  CHECK(tokens.matches("old"));
  CHECK(tokens.matches("new"));
  CHECK_FALSE(tokens.matches("ne"));
  CHECK_FALSE(tokens.matches(""));
  CHECK(bridge::TokenSet::sha256_hex("abc") ==
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK_THROWS(bridge::TokenSet({"zz"}));
}

TEST_CASE("bearer tokens are read case-insensitively from the scheme", "[auth]") {
  CHECK(bridge::bearer_token("Bearer abc") == "abc");
  CHECK(bridge::bearer_token("bearer   abc ") == "abc");
  CHECK(bridge::bearer_token("Basic abc").empty());
  CHECK(bridge::bearer_token("Bearer ").empty());
}

TEST_CASE("a token limited to projects writes those and refuses any other, naming the event",
          "[ingest]") {
  Fixture f;
  auto own = f.post("[" + kRun + "]", "Bearer tenant-a");
  CHECK(own.status == 202);
  CHECK(f.sink.kept == 1);

  std::string other = kRun;
  other.replace(other.find("aaaaaaaa-bbbb"), 36, "bbbbbbbb-bbbb-4ccc-8ddd-eeeeeeeeeeee");
  other.replace(other.find("7d6c5b4a3f21"), 12, "7d6c5b4a3f22");
  auto r = f.post("[" + kRun + "," + other + "]", "Bearer tenant-a");
  CHECK(r.status == 403);
  auto body = nlohmann::json::parse(r.body);
  CHECK(body["error"] == "forbidden_project");
  CHECK(body["message"].get<std::string>().starts_with("event 1: project_id bbbbbbbb-"));
  REQUIRE(body["details"].size() == 1);
  CHECK(body["details"][0]["index"] == 1);
  CHECK(body["details"][0]["field"] == "project_id");
  CHECK(f.sink.kept == 1);  // all or nothing: the good event of that request was not kept
  CHECK(f.exposition().find(
            R"(meshhook_stats_ingest_requests_total{outcome="forbidden_project"} 1)") !=
        std::string::npos);

  // The unlimited token writes both.
  CHECK(f.post("[" + kRun + "," + other + "]").status == 202);
  CHECK(f.sink.kept == 3);
}

TEST_CASE("token projects must name accepted tokens and uuids", "[ingest]") {
  const auto a = bridge::TokenSet::sha256_hex("a");
  CHECK_THROWS_AS(bridge::TokenSet({a}, {{bridge::TokenSet::sha256_hex("b"),
                                          {"aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"}}}),
                  std::invalid_argument);
  CHECK_THROWS_AS(bridge::TokenSet({a}, {{a, {"not-a-uuid"}}}), std::invalid_argument);
  CHECK_THROWS_AS(bridge::TokenSet({a}, {{a, {}}}), std::invalid_argument);
  bridge::TokenSet ok({a}, {{a, {"aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"}}});
  REQUIRE(ok.find("a"));
  CHECK(ok.find("a")->size() == 1);
  CHECK_FALSE(ok.find("b"));
  CHECK_FALSE(ok.find(""));
}

TEST_CASE("ingest observes a run's queue time and steps", "[ingest]") {
  Fixture f;
  const std::string run =
      R"({"run_id":"0b4c6a3e-1f2d-4c5b-9a8e-7d6c5b4a3f21","workflow_id":"11111111-2222-4333-8444-555555555555",)"
      R"("project_id":"aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee","status":"succeeded",)"
      R"("queued_at":"2026-01-31T11:59:59.700Z","started_at":"2026-01-31T12:00:00Z",)"
      R"("finished_at":"2026-01-31T12:00:02Z","steps":[{"id":"fetch","started_at":"2026-01-31T12:00:00Z",)"
      R"("finished_at":"2026-01-31T12:00:01.5Z","status":"failed","attempts":2}]})";
  REQUIRE(f.post(run).status == 202);
  const auto text = f.exposition();
  const std::string labels =
      R"(tenant="aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee",workflow="11111111-2222-4333-8444-555555555555")";
  CHECK(text.find("meshhook_workflow_run_queue_seconds_sum{" + labels + "} 0.3") !=
        std::string::npos);
  CHECK(text.find("meshhook_workflow_step_duration_seconds_sum{" + labels +
                  R"(,step="fetch",status="failed"} 1.5)") != std::string::npos);
  // A run without them observes neither.
  Fixture plain;
  REQUIRE(plain.post(kRun).status == 202);
  CHECK(plain.exposition().find("meshhook_workflow_run_queue_seconds_count{") == std::string::npos);
  CHECK(plain.exposition().find("meshhook_workflow_step_duration_seconds_count{") ==
        std::string::npos);
}
