#pragma once
// The self-metric families of storage (writer, compactor) are declared the same way.

#include <string>
#include <vector>

#include "meshhook/exporter/family.h"

namespace meshhook::bridge::detail {

inline exporter::FamilyOptions family(std::string name, std::string help, std::string unit = "",
                                      std::vector<std::string> labels = {}) {
  exporter::FamilyOptions o;
  o.name = std::move(name);
  o.help = std::move(help);
  o.unit = std::move(unit);
  o.label_names = std::move(labels);
  return o;
}

}  // namespace meshhook::bridge::detail
