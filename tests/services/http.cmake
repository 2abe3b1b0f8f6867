# Tests of services/http_endpoint over real HTTP on loopback. Included from
# tests/services/CMakeLists.txt.

# tlsb_http_get: a tiny HTTP/1.1 client over a real TCP socket. A library because the tests of
# the tlsbroker binary probe /healthz, /readyz and /metrics the same way.
add_library(tlsb_http_get STATIC ${CMAKE_CURRENT_LIST_DIR}/http_get.cc)
tlsb_warnings(tlsb_http_get)
target_link_libraries(tlsb_http_get PUBLIC tlsb_common)

tlsb_add_gtest(http_endpoint_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/http_endpoint_test.cc
  LIBS tlsb_http_endpoint tlsb_metrics_prometheus tlsb_http_get)
