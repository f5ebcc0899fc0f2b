# Finds CivetWeb and its C++ wrapper (Debian: libcivetweb-dev). Debian's own CMake package
# config also requires the civetweb server binary, which a library user does not need.
find_path(CivetWeb_INCLUDE_DIR CivetServer.h)
find_library(CivetWeb_LIBRARY civetweb)
find_library(CivetWeb_CPP_LIBRARY civetweb-cpp)
include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(CivetWeb
  REQUIRED_VARS CivetWeb_CPP_LIBRARY CivetWeb_LIBRARY CivetWeb_INCLUDE_DIR)
if(CivetWeb_FOUND AND NOT TARGET CivetWeb::CivetWeb)
  add_library(CivetWeb::CivetWeb INTERFACE IMPORTED)
  set_target_properties(CivetWeb::CivetWeb PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES "${CivetWeb_INCLUDE_DIR}"
    INTERFACE_LINK_LIBRARIES "${CivetWeb_CPP_LIBRARY};${CivetWeb_LIBRARY};${CMAKE_DL_LIBS}")
endif()
