#include "meshhook/bridge/auth/jwt_verifier.h"

#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include <catch2/catch.hpp>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "../../support/jwt_signing.h"
#include "meshhook/bridge/auth/claims_resolver.h"

using meshhook::bridge::ClaimsResolver;
using meshhook::bridge::ClaimsResolverOptions;
using meshhook::bridge::HttpRequest;
using meshhook::bridge::JwtAlgorithm;
using meshhook::bridge::JwtOptions;
using meshhook::bridge::JwtVerifier;
using meshhook::testing::b64url;
using meshhook::testing::hs256;
using nlohmann::json;

namespace {

// Tokens are made here with OpenSSL directly, not with libjwt, so the tests also pin
// interoperability with the standard encodings (JOSE r||s for ES256).
const std::string kSecret = "a-test-secret-of-at-least-32-bytes!!";
const std::int64_t kNow = 1'700'000'000;

using Pkey = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;

Pkey rsa_key() {
  return Pkey(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{2048}), &EVP_PKEY_free);
}
Pkey ec_key() { return Pkey(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"), &EVP_PKEY_free); }

std::string public_pem(EVP_PKEY* key) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), &BIO_free);
  PEM_write_bio_PUBKEY(bio.get(), key);
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(n));
}

std::string private_pem(EVP_PKEY* key) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), &BIO_free);
  PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(n));
}

std::string sign_with(EVP_PKEY* key, std::string_view input, bool ecdsa) {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key);
  std::size_t len = 0;
  EVP_DigestSign(ctx.get(), nullptr, &len, reinterpret_cast<const unsigned char*>(input.data()),
                 input.size());
  std::string sig(len, '\0');
  EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len,
                 reinterpret_cast<const unsigned char*>(input.data()), input.size());
  sig.resize(len);
  if (!ecdsa) return sig;
  // DER ECDSA-Sig-Value -> JOSE: r and s as 32-byte big-endian numbers.
  const auto* p = reinterpret_cast<const unsigned char*>(sig.data());
  ECDSA_SIG* es = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(sig.size()));
  std::string raw(64, '\0');
  BN_bn2binpad(ECDSA_SIG_get0_r(es), reinterpret_cast<unsigned char*>(raw.data()), 32);
  BN_bn2binpad(ECDSA_SIG_get0_s(es), reinterpret_cast<unsigned char*>(raw.data()) + 32, 32);
  ECDSA_SIG_free(es);
  return raw;
}

json claims(std::int64_t exp = kNow + 3600) {
  return {{"sub", "6f1c2b8e-7a47-4f2b-9a8e-0c3a4f5d6e7f"}, {"role", "authenticated"}, {"exp", exp}};
}

std::string token_hs256(const json& payload, std::string_view key = kSecret,
                        const json& header = {{"alg", "HS256"}, {"typ", "JWT"}}) {
  const std::string input = b64url(header.dump()) + "." + b64url(payload.dump());
  return input + "." + b64url(hs256(key, input));
}

std::string token_pk(EVP_PKEY* key, const char* alg, const json& payload) {
  const std::string input =
      b64url(json{{"alg", alg}, {"typ", "JWT"}}.dump()) + "." + b64url(payload.dump());
  return input + "." + b64url(sign_with(key, input, std::string_view(alg) == "ES256"));
}

JwtVerifier hs_verifier(std::string audience = "", std::string issuer = "") {
  return JwtVerifier(JwtOptions{.algorithm = JwtAlgorithm::hs256,
                                .key = kSecret,
                                .audience = std::move(audience),
                                .issuer = std::move(issuer)});
}

}  // namespace

TEST_CASE("a valid HS256 token yields the caller's claims", "[jwt]") {
  const auto r = hs_verifier().verify(token_hs256(claims()), kNow);
  REQUIRE(r.ok());
  CHECK(r.claims->subject == "6f1c2b8e-7a47-4f2b-9a8e-0c3a4f5d6e7f");
  CHECK(json::parse(r.claims->claims_json) == claims());
}

TEST_CASE("jwt: no token is refused", "[jwt]") {
  const auto r = hs_verifier().verify("", kNow);
  CHECK_FALSE(r.ok());
  CHECK(r.error == "no token");
}

TEST_CASE("jwt: a bad signature is refused", "[jwt]") {
  CHECK_FALSE(hs_verifier()
                  .verify(token_hs256(claims(), "another-secret-of-at-least-32-bytes!"), kNow)
                  .ok());
  // A payload swapped under a valid signature.
  const auto good = token_hs256(claims());
  auto forged = claims();
  forged["sub"] = "00000000-0000-0000-0000-000000000001";
  const auto first = good.find('.');
  const auto second = good.find('.', first + 1);
  const auto swapped = good.substr(0, first + 1) + b64url(forged.dump()) + good.substr(second);
  const auto r = hs_verifier().verify(swapped, kNow);
  CHECK_FALSE(r.ok());
  CHECK(r.error == "the token signature does not verify");
}

TEST_CASE("jwt: an expired token is refused, within the leeway it is not", "[jwt]") {
  CHECK(hs_verifier().verify(token_hs256(claims(kNow - 3600)), kNow).error ==
        "the token has expired");
  CHECK(hs_verifier().verify(token_hs256(claims(kNow - 10)), kNow).ok());
}

TEST_CASE("jwt: a token without exp is refused", "[jwt]") {
  auto c = claims();
  c.erase("exp");
  CHECK(hs_verifier().verify(token_hs256(c), kNow).error == "the token has no exp (expiry) claim");
  c["exp"] = "tomorrow";
  CHECK_FALSE(hs_verifier().verify(token_hs256(c), kNow).ok());
}

TEST_CASE("jwt: a token not valid yet is refused", "[jwt]") {
  auto c = claims();
  c["nbf"] = kNow + 600;
  CHECK(hs_verifier().verify(token_hs256(c), kNow).error == "the token is not valid yet (nbf)");
  c["nbf"] = kNow + 5;
  CHECK(hs_verifier().verify(token_hs256(c), kNow).ok());
}

TEST_CASE("jwt: a wrong audience is refused", "[jwt]") {
  auto c = claims();
  c["aud"] = "someone-else";
  CHECK(hs_verifier("authenticated").verify(token_hs256(c), kNow).error ==
        "the token is not for this audience (aud)");
  c.erase("aud");
  CHECK_FALSE(hs_verifier("authenticated").verify(token_hs256(c), kNow).ok());
  c["aud"] = json::array({"x", "authenticated"});
  CHECK(hs_verifier("authenticated").verify(token_hs256(c), kNow).ok());
}

TEST_CASE("jwt: a wrong issuer is refused", "[jwt]") {
  auto c = claims();
  c["iss"] = "https://evil.example/auth/v1";
  CHECK(hs_verifier("", "https://x.supabase.co/auth/v1").verify(token_hs256(c), kNow).error ==
        "the token is not from the expected issuer (iss)");
  c["iss"] = "https://x.supabase.co/auth/v1";
  CHECK(hs_verifier("", "https://x.supabase.co/auth/v1").verify(token_hs256(c), kNow).ok());
}

TEST_CASE("jwt: alg none is refused, signed or not", "[jwt]") {
  const std::string unsigned_token =
      b64url(json{{"alg", "none"}}.dump()) + "." + b64url(claims().dump()) + ".";
  auto r = hs_verifier().verify(unsigned_token, kNow);
  CHECK_FALSE(r.ok());
  CHECK(r.error.find("alg none") != std::string::npos);
  CHECK_FALSE(hs_verifier().verify(token_hs256(claims(), kSecret, {{"alg", "none"}}), kNow).ok());
  CHECK_FALSE(hs_verifier().verify(token_hs256(claims(), kSecret, {{"alg", "None"}}), kNow).ok());
}

TEST_CASE("jwt: HS256 signed with the RS256 public key is refused (alg confusion)", "[jwt]") {
  auto key = rsa_key();
  const auto pem = public_pem(key.get());
  JwtVerifier rs(JwtOptions{.algorithm = JwtAlgorithm::rs256, .key = pem});
  CHECK(rs.verify(token_pk(key.get(), "RS256", claims()), kNow).ok());
  const auto r = rs.verify(token_hs256(claims(), pem), kNow);
  CHECK_FALSE(r.ok());
  CHECK(r.error == "the token is signed with alg HS256; this server accepts only RS256");
  // And the other way: an HS256 server does not take RS256 tokens.
  CHECK_FALSE(hs_verifier().verify(token_pk(key.get(), "RS256", claims()), kNow).ok());
}

TEST_CASE("jwt: ES256 tokens verify with the EC public key only", "[jwt]") {
  auto key = ec_key();
  auto other = ec_key();
  JwtVerifier es(JwtOptions{.algorithm = JwtAlgorithm::es256, .key = public_pem(key.get())});
  CHECK(es.verify(token_pk(key.get(), "ES256", claims()), kNow).ok());
  CHECK_FALSE(es.verify(token_pk(other.get(), "ES256", claims()), kNow).ok());
  CHECK_FALSE(es.verify(token_pk(key.get(), "ES256", claims(kNow - 3600)), kNow).ok());
}

TEST_CASE("jwt: garbage is refused without a crash", "[jwt]") {
  const auto v = hs_verifier();
  for (const std::string& t : std::vector<std::string>{
           "abc", "a.b.c", "a.b", "....", "..", ".", "eyJ.eyJ.eyJ", "Bearer x",
           std::string(100000, 'a'), std::string("a\0b.c.d", 7),
           b64url("[1]") + "." + b64url("{}") + ".AAAA",
           b64url("{\"alg\":\"HS256\"}") + ".%%%." + "AAAA",
           b64url("{\"alg\":\"HS256\"}") + "." + b64url("[]") + "." + "AAAA"}) {
    INFO(t.substr(0, 40));
    CHECK_FALSE(v.verify(t, kNow).ok());
  }
}

TEST_CASE("jwt: critical header extensions are refused", "[jwt]") {
  CHECK_FALSE(
      hs_verifier()
          .verify(token_hs256(claims(), kSecret, {{"alg", "HS256"}, {"crit", {"b64"}}}), kNow)
          .ok());
}

TEST_CASE("jwt: keys that do not suit the algorithm are refused at start-up", "[jwt]") {
  CHECK_THROWS_AS(JwtVerifier(JwtOptions{.algorithm = JwtAlgorithm::hs256, .key = "short"}),
                  std::invalid_argument);
  auto rsa = rsa_key();
  auto ec = ec_key();
  CHECK_THROWS_AS(JwtVerifier(JwtOptions{.algorithm = JwtAlgorithm::rs256, .key = "not a pem"}),
                  std::invalid_argument);
  CHECK_THROWS_AS(
      JwtVerifier(JwtOptions{.algorithm = JwtAlgorithm::rs256, .key = public_pem(ec.get())}),
      std::invalid_argument);
  CHECK_THROWS_AS(
      JwtVerifier(JwtOptions{.algorithm = JwtAlgorithm::es256, .key = public_pem(rsa.get())}),
      std::invalid_argument);
  // A private key is not what the server should hold.
  CHECK_THROWS_AS(
      JwtVerifier(JwtOptions{.algorithm = JwtAlgorithm::es256, .key = private_pem(ec.get())}),
      std::invalid_argument);
}

TEST_CASE("jwt algorithm names parse exactly", "[jwt]") {
  CHECK(meshhook::bridge::parse_jwt_algorithm("HS256") == JwtAlgorithm::hs256);
  CHECK(meshhook::bridge::parse_jwt_algorithm("ES256") == JwtAlgorithm::es256);
  CHECK_FALSE(meshhook::bridge::parse_jwt_algorithm("none"));
  CHECK_FALSE(meshhook::bridge::parse_jwt_algorithm("hs256"));
}

namespace {

HttpRequest with_authorization(const std::string& value) {
  HttpRequest r;
  r.method = "GET";
  r.header = [value](std::string_view name) -> std::string_view {
    return name == "Authorization" ? std::string_view(value) : std::string_view();
  };
  return r;
}

ClaimsResolver resolver(std::string project_ids_claim = "",
                        std::vector<std::string> allowed_roles = {"authenticated"}) {
  return ClaimsResolver(
      ClaimsResolverOptions{.jwt = JwtOptions{.algorithm = JwtAlgorithm::hs256, .key = kSecret},
                            .project_ids_claim = std::move(project_ids_claim),
                            .allowed_roles = std::move(allowed_roles)});
}

}  // namespace

TEST_CASE("the resolver answers 401 with MeshHook's error shape without a bearer token", "[jwt]") {
  for (const std::string header : {"", "Basic dXNlcjpwYXNz", "Bearer ", "test-ingest-token"}) {
    INFO(header);
    const auto r = resolver().resolve(with_authorization(header));
    REQUIRE_FALSE(r.ok());
    CHECK(r.error.status == 401);
    const auto body = json::parse(r.error.body);
    CHECK(body.at("error") == "unauthorized");
    CHECK(body.at("message").is_string());
  }
}

TEST_CASE("the resolver refuses an ingest token presented as a bearer token", "[jwt]") {
  const auto r = resolver().resolve(with_authorization("Bearer test-ingest-token"));
  REQUIRE_FALSE(r.ok());
  CHECK(r.error.status == 401);
  CHECK(json::parse(r.error.body).at("error") == "invalid_token");
}

TEST_CASE("the resolver refuses everyone when no JWT key is configured", "[jwt]") {
  ClaimsResolver none(ClaimsResolverOptions{});
  const auto r = none.resolve(with_authorization("Bearer " + token_hs256(claims())));
  CHECK_FALSE(r.ok());
  CHECK(r.error.status == 401);
}

TEST_CASE("the resolver hands on the configured project ids claim, and only that", "[jwt]") {
  auto c = claims(4102444800);  // 2100
  c["app_metadata"] = {{"projects", {"AAAAAAAA-0000-4000-8000-000000000001"}}};
  c["meshhook_project_ids"] = {"bbbbbbbb-0000-4000-8000-000000000002"};  // not configured: dropped
  const auto token = "Bearer " + token_hs256(c);

  auto r = resolver("app_metadata.projects").resolve(with_authorization(token));
  REQUIRE(r.ok());
  CHECK(json::parse(r.claims->claims_json).at("meshhook_project_ids") ==
        json::array({"aaaaaaaa-0000-4000-8000-000000000001"}));

  r = resolver().resolve(with_authorization(token));
  REQUIRE(r.ok());
  CHECK_FALSE(json::parse(r.claims->claims_json).contains("meshhook_project_ids"));

  r = resolver("meshhook_project_ids").resolve(with_authorization(token));
  REQUIRE(r.ok());
  CHECK(json::parse(r.claims->claims_json).at("meshhook_project_ids") ==
        json::array({"bbbbbbbb-0000-4000-8000-000000000002"}));

  c["app_metadata"]["projects"] = {"1; drop table projects"};
  r = resolver("app_metadata.projects").resolve(with_authorization("Bearer " + token_hs256(c)));
  CHECK_FALSE(r.ok());
  CHECK(r.error.status == 401);
}

TEST_CASE("the resolver answers 403 forbidden_role for a role that is not allowed", "[jwt]") {
  auto c = claims(4102444800);
  c["role"] = "anon";  // Supabase's public anon key
  auto r = resolver().resolve(with_authorization("Bearer " + token_hs256(c)));
  REQUIRE_FALSE(r.ok());
  CHECK(r.error.status == 403);
  const auto body = json::parse(r.error.body);
  CHECK(body.at("error") == "forbidden_role");
  CHECK(body.at("message").is_string());

  c["role"] = "service_role";
  CHECK(resolver().resolve(with_authorization("Bearer " + token_hs256(c))).error.status == 403);
  CHECK(resolver("", {"authenticated", "service_role"})
            .resolve(with_authorization("Bearer " + token_hs256(c)))
            .ok());

  c["role"] = "authenticated";
  CHECK(resolver().resolve(with_authorization("Bearer " + token_hs256(c))).ok());
  CHECK(resolver("", {"dashboard"})
            .resolve(with_authorization("Bearer " + token_hs256(c)))
            .error.status == 403);
}

TEST_CASE("a token without a role claim counts as authenticated", "[jwt]") {
  auto c = claims(4102444800);
  c.erase("role");
  CHECK(resolver().resolve(with_authorization("Bearer " + token_hs256(c))).ok());
  const auto r =
      resolver("", {"dashboard"}).resolve(with_authorization("Bearer " + token_hs256(c)));
  REQUIRE_FALSE(r.ok());
  CHECK(r.error.status == 403);
}

TEST_CASE("a role claim that is not a string is an invalid token", "[jwt]") {
  auto c = claims(4102444800);
  for (const auto& role : {json(1), json::array({"authenticated"}), json(nullptr)}) {
    INFO(role.dump());
    c["role"] = role;
    const auto r = resolver().resolve(with_authorization("Bearer " + token_hs256(c)));
    REQUIRE_FALSE(r.ok());
    CHECK(r.error.status == 401);
    CHECK(json::parse(r.error.body).at("error") == "invalid_token");
  }
}
