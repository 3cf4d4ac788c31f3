#include "core/sha256.h"

#include <openssl/evp.h>

#include "core/error.h"

namespace medlab {

struct Sha256::Context {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  ~Context() { EVP_MD_CTX_free(ctx); }
};

Sha256::Sha256() : context_(std::make_unique<Context>()) {
  if (!context_->ctx || EVP_DigestInit_ex(context_->ctx, EVP_sha256(), nullptr) != 1)
    fail("SHA-256: OpenSSL could not start a digest");
}

Sha256::~Sha256() = default;

Sha256& Sha256::update(const void* data, size_t size) {
  if (EVP_DigestUpdate(context_->ctx, data, size) != 1) fail("SHA-256: OpenSSL digest update failed");
  return *this;
}

std::string Sha256::hex_digest() {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_DigestFinal_ex(context_->ctx, digest, &length) != 1) fail("SHA-256: OpenSSL digest failed");
  static const char hex[] = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < length; ++i) {
    out += hex[digest[i] >> 4];
    out += hex[digest[i] & 15];
  }
  return out;
}

}  // namespace medlab
