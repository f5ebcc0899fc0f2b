/* CivetWeb 1.15 as Debian 12 ships it loads OpenSSL at run time: dlopen("libssl.so") and one
 * dlsym per function. OpenSSL 3 no longer exports SSL_get_peer_certificate (it became a macro
 * for SSL_get1_peer_certificate), so CivetWeb's pointer is null and every TLS connection
 * crashes the worker that accepts it. This library has the soname "libssl.so" and is loaded
 * (by absolute path) before CivetWeb starts, so CivetWeb's dlopen finds it already loaded; its
 * dependency, the real libssl.so.3, answers every other lookup. The headers are not included
 * on purpose: they would turn the name below into the macro. */

typedef struct ssl_st SSL;
typedef struct x509_st X509;

X509 *SSL_get1_peer_certificate(const SSL *ssl);

/* Same reference semantics: the old name always returned a new reference, freed by the caller. */
__attribute__((visibility("default"))) X509 *SSL_get_peer_certificate(const SSL *ssl) {
  return SSL_get1_peer_certificate(ssl);
}
