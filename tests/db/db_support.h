#pragma once
// Helpers for tests against a real Postgres: each test gets its own database.

#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <pqxx/pqxx>
#include <random>
#include <sstream>
#include <string>

namespace meshhook::testing {

/// A fresh directory under the system's temporary directory, removed with everything in it.
struct TempDir {
  std::filesystem::path path;
  explicit TempDir(const std::string& prefix = "meshhook-db-test") {
    std::random_device rd;
    path = std::filesystem::temp_directory_path() /
           (prefix + "-" + std::to_string(::getpid()) + "-" + std::to_string(rd()));
    std::filesystem::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
};

/// The server given by MESHHOOK_TEST_DATABASE_URL. Empty when unset and
/// MESHHOOK_TEST_ALLOW_SKIP is set (the caller then returns: the test is skipped); a failure
/// when unset otherwise, so `make test` can never pass without a database.
inline std::string server_url() {
  const char* url = std::getenv("MESHHOOK_TEST_DATABASE_URL");
  if (url != nullptr && *url != '\0') return url;
  if (std::getenv("MESHHOOK_TEST_ALLOW_SKIP") != nullptr) {
    WARN("skipped: MESHHOOK_TEST_DATABASE_URL is not set (run through `make test`)");
    return {};
  }
  FAIL(
      "MESHHOOK_TEST_DATABASE_URL is not set: run the db tests through `make test`, or set "
      "MESHHOOK_TEST_ALLOW_SKIP=1 to skip them");
  return {};
}

/// url with its database name replaced (postgresql://user@host:port/NAME?params).
inline std::string with_database(const std::string& url, const std::string& name) {
  auto scheme = url.find("://");
  auto slash = url.find('/', scheme == std::string::npos ? 0 : scheme + 3);
  auto query = url.find('?');
  std::string rest = query == std::string::npos ? "" : url.substr(query);
  return url.substr(0, slash) + "/" + name + rest;
}

/// url with host:port replaced.
inline std::string with_host_port(const std::string& url, const std::string& host_port) {
  auto at = url.find('@');
  auto start = at == std::string::npos ? url.find("://") + 3 : at + 1;
  auto slash = url.find('/', start);
  return url.substr(0, start) + host_port + url.substr(slash);
}

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

/// A database created for one test from template0 and dropped afterwards.
class TestDatabase {
 public:
  explicit TestDatabase(const std::string& server) : server_(server) {
    std::random_device rd;
    name_ = "mhs_test_" + std::to_string(::getpid()) + "_" + std::to_string(rd() % 1000000);
    pqxx::connection c(server_);
    pqxx::nontransaction tx(c);
    tx.exec("create database " + tx.quote_name(name_) + " template template0");
    url_ = with_database(server_, name_);
  }
  ~TestDatabase() {
    try {
      pqxx::connection c(server_);
      pqxx::nontransaction tx(c);
      tx.exec("drop database if exists " + tx.quote_name(name_) + " with (force)");
    } catch (const std::exception&) {
    }
  }
  TestDatabase(const TestDatabase&) = delete;
  TestDatabase& operator=(const TestDatabase&) = delete;

  const std::string& url() const { return url_; }
  const std::string& name() const { return name_; }

  /// Runs SQL text (several statements allowed) outside a transaction.
  void exec(const std::string& sql) const {
    pqxx::connection c(url_);
    pqxx::nontransaction tx(c);
    tx.exec(sql);
  }
  void exec_file(const std::string& relative_path) const {
    exec(read_file(std::string(MESHHOOK_SOURCE_DIR) + "/" + relative_path));
  }
  long long scalar(const std::string& sql) const {
    pqxx::connection c(url_);
    pqxx::read_transaction tx(c);
    return tx.exec1(sql)[0].as<long long>();
  }

 private:
  std::string server_;
  std::string name_;
  std::string url_;
};

// A login of its own (name: prefix, the pid and a random number; attributes as CREATE ROLE
// takes them), dropped after the databases that name it: declare it before them.
struct TestLogin {
  std::string server, name;
  TestLogin(std::string s, const std::string& prefix, const std::string& attributes)
      : server(std::move(s)) {
    std::random_device rd;
    name = prefix + std::to_string(::getpid()) + "_" + std::to_string(rd() % 1000000);
    pqxx::connection c(server);
    pqxx::nontransaction tx(c);
    tx.exec("create role " + tx.quote_name(name) + " login " + attributes);
  }
  ~TestLogin() {
    try {
      pqxx::connection c(server);
      pqxx::nontransaction tx(c);
      tx.exec("drop role if exists " + tx.quote_name(name));
    } catch (const std::exception&) {
    }
  }
  TestLogin(const TestLogin&) = delete;
  TestLogin& operator=(const TestLogin&) = delete;
  // database_url with this login as its user.
  std::string url(const std::string& database_url) const {
    auto start = database_url.find("://") + 3;
    auto at = database_url.find('@', start);
    return database_url.substr(0, start) + name + database_url.substr(at);
  }
};

}  // namespace meshhook::testing
