# tlsb_http_endpoint: the plain-HTTP endpoint on the metrics port (/metrics, /healthz, /readyz)
# on one CivetWeb server. Its own library so the tests can start it without the gRPC server, and
# so only this target (not the core) depends on an HTTP server. Included from
# services/CMakeLists.txt.
find_package(civetweb CONFIG REQUIRED)

add_library(tlsb_http_endpoint ${CMAKE_CURRENT_LIST_DIR}/http_endpoint.cc)
tlsb_warnings(tlsb_http_endpoint)
# CivetWeb stays PRIVATE: the header only forward-declares its structs.
target_link_libraries(tlsb_http_endpoint
  PUBLIC tlsb_common tlsb_metrics_prometheus
  PRIVATE civetweb::civetweb tlsb_log)
