#pragma once
// The SQL files of sql/ compiled into the library (see bridge/cmake/embed_sql.cmake).

#include <cstddef>
#include <string_view>

namespace meshhook::bridge::detail {

struct EmbeddedFile {
  const char* path;  // relative to sql/, e.g. "migrations/0001_execution_time_statistics.sql"
  const unsigned char* data;
  std::size_t size;

  std::string_view text() const noexcept { return {reinterpret_cast<const char*>(data), size}; }
};

extern const EmbeddedFile kEmbeddedSql[];
extern const std::size_t kEmbeddedSqlCount;

}  // namespace meshhook::bridge::detail
