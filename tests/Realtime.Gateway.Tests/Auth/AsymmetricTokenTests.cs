using System.Net;
using System.Security.Cryptography;
using System.Text;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;
using Realtime.Gateway.Auth;

namespace Realtime.Gateway.Tests.Auth;

/// <summary>RS256 and ES256 tokens, keys from configuration and from a JWKS served on loopback, key ids, and where tokens may travel.</summary>
public sealed class AsymmetricTokenTests
{
    private const string Issuer = "idp";
    private const string Audience = "realtime";
    private static readonly string[] OwnUserChannel = ["user:{sub}"];
    private static readonly string[] AnyRoom = ["room:*"];

    private static string Mint(SecurityKey key, string algorithm, string subject = "alice", object? channels = null, object? permissions = null, TimeSpan? lifetime = null, bool issuedAt = true)
    {
        var now = DateTime.UtcNow;
        var claims = new Dictionary<string, object> { ["sub"] = subject };
        if (channels is not null)
        {
            claims["channels"] = channels;
        }

        if (permissions is not null)
        {
            claims["permissions"] = permissions;
        }

        return new JsonWebTokenHandler { SetDefaultTimesOnTokenCreation = false }.CreateToken(new SecurityTokenDescriptor
        {
            Claims = claims,
            Issuer = Issuer,
            Audience = Audience,
            IssuedAt = issuedAt ? now : null,
            NotBefore = now,
            Expires = now + (lifetime ?? TimeSpan.FromMinutes(5)),
            SigningCredentials = new SigningCredentials(key, algorithm),
        });
    }

    internal static int FreeLoopbackPort()
    {
        using var probe = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        return ((IPEndPoint)probe.LocalEndpoint).Port;
    }

    private static (RsaSecurityKey Private, string PublicPem) NewRsa(string kid)
    {
        var rsa = RSA.Create(2048);
        return (new RsaSecurityKey(rsa) { KeyId = kid }, rsa.ExportSubjectPublicKeyInfoPem());
    }

    private static (ECDsaSecurityKey Private, string PublicPem) NewEc(string kid)
    {
        var ec = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        return (new ECDsaSecurityKey(ec) { KeyId = kid }, ec.ExportSubjectPublicKeyInfoPem());
    }

    [Fact]
    public async Task Rs256_and_es256_tokens_validate_against_configured_public_keys_by_kid()
    {
        var (rsa, rsaPem) = NewRsa("r1");
        var (ec, ecPem) = NewEc("e1");
        var validator = TokenValidatorTests.Create(new AuthOptions
        {
            Issuer = Issuer,
            Audience = Audience,
            Keys = [new() { Id = "r1", Algorithm = "RS256", PublicKeyPem = rsaPem }, new() { Id = "e1", Algorithm = "ES256", PublicKeyPem = ecPem }],
        });

        Assert.Equal("alice", (await validator.ValidateAsync(Mint(rsa, SecurityAlgorithms.RsaSha256, channels: "room:*"))).Identity?.Subject);
        Assert.Equal("alice", (await validator.ValidateAsync(Mint(ec, SecurityAlgorithms.EcdsaSha256, channels: "room:*"))).Identity?.Subject);

        var (stranger, _) = NewRsa("r2");
        Assert.Equal(TokenFailure.UnknownKey, (await validator.ValidateAsync(Mint(stranger, SecurityAlgorithms.RsaSha256))).Failure);
        var (impostor, _) = NewRsa("r1");
        Assert.Equal(TokenFailure.InvalidSignature, (await validator.ValidateAsync(Mint(impostor, SecurityAlgorithms.RsaSha256))).Failure);
    }

    [Fact]
    public async Task An_hs256_token_signed_with_the_public_key_as_secret_is_refused()
    {
        // The classic algorithm confusion: the attacker knows the RSA public key and uses it as an HMAC secret.
        var (_, pem) = NewRsa("r1");
        var validator = TokenValidatorTests.Create(new AuthOptions { Keys = [new() { Id = "r1", Algorithm = "RS256", PublicKeyPem = pem }] });
        var forged = Mint(new SymmetricSecurityKey(Encoding.UTF8.GetBytes(pem)) { KeyId = "r1" }, SecurityAlgorithms.HmacSha256);
        Assert.False((await validator.ValidateAsync(forged)).IsValid);
    }

    [Fact]
    public async Task Keys_come_from_a_jwks_that_is_fetched_again_when_a_token_names_an_unknown_kid()
    {
        var (first, _) = NewRsa("k1");
        var (second, _) = NewRsa("k2");
        var published = new[] { first };
        var fetches = 0;
        using var listener = new HttpListener();
        var port = FreeLoopbackPort();
        listener.Prefixes.Add($"http://127.0.0.1:{port}/");
        listener.Start();
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        var serving = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                var context = await listener.GetContextAsync().WaitAsync(stop.Token);
                Interlocked.Increment(ref fetches);
                var keys = Volatile.Read(ref published).Select(k => JsonWebKeyConverter.ConvertFromRSASecurityKey(new RsaSecurityKey(k.Rsa.ExportParameters(false)) { KeyId = k.KeyId }));
                var body = Encoding.UTF8.GetBytes(System.Text.Json.JsonSerializer.Serialize(new { keys = keys.Select(k => new { kty = k.Kty, kid = k.Kid, n = k.N, e = k.E, alg = "RS256", use = "sig" }) }));
                context.Response.ContentType = "application/json";
                await context.Response.OutputStream.WriteAsync(body, stop.Token);
                context.Response.Close();
            }
        }, stop.Token);

        var validator = TokenValidatorTests.Create(new AuthOptions
        {
            JwksUrl = new Uri($"http://127.0.0.1:{port}/jwks"),
            JwksMinRefreshInterval = TimeSpan.Zero,
        });
        Assert.True((await validator.ValidateAsync(Mint(first, SecurityAlgorithms.RsaSha256))).IsValid);
        Assert.Equal(1, Volatile.Read(ref fetches));

        // The provider rotates: a token with the new kid makes the node fetch again, and then it validates.
        Volatile.Write(ref published, [first, second]);
        Assert.True((await validator.ValidateAsync(Mint(second, SecurityAlgorithms.RsaSha256))).IsValid);
        Assert.Equal(2, Volatile.Read(ref fetches));

        // A kid the provider does not have either: refused as unknown.
        var (stranger, _) = NewRsa("k9");
        Assert.Equal(TokenFailure.UnknownKey, (await validator.ValidateAsync(Mint(stranger, SecurityAlgorithms.RsaSha256))).Failure);
        await stop.CancelAsync();
        listener.Stop();
        await serving.ContinueWith(_ => { }, TaskScheduler.Default);
    }

    [Fact]
    public async Task Permissions_are_granted_per_action_and_may_name_the_subject()
    {
        var (rsa, pem) = NewRsa("r1");
        var validator = TokenValidatorTests.Create(new AuthOptions { Keys = [new() { Id = "r1", Algorithm = "RS256", PublicKeyPem = pem }] });
        var identity = (await validator.ValidateAsync(Mint(rsa, SecurityAlgorithms.RsaSha256, channels: OwnUserChannel, permissions: new Dictionary<string, object>
        {
            ["subscribe"] = AnyRoom,
            ["publish"] = "room:lobby",
        }))).Identity!;

        Assert.True(identity.Permissions.Allows(ChannelAction.Subscribe, "room:7"));
        Assert.False(identity.Permissions.Allows(ChannelAction.Publish, "room:7"));
        Assert.True(identity.Permissions.Allows(ChannelAction.Publish, "room:lobby"));
        Assert.False(identity.Permissions.Allows(ChannelAction.History, "room:7"));
        Assert.True(identity.Permissions.Allows(ChannelAction.History, "user:alice"));
        Assert.False(identity.Permissions.Allows(ChannelAction.Subscribe, "user:bob"));

        // A subject that is a glob grants nothing through {sub}.
        var wildcard = (await validator.ValidateAsync(Mint(rsa, SecurityAlgorithms.RsaSha256, subject: "*", channels: OwnUserChannel))).Identity!;
        Assert.False(wildcard.Permissions.Allows(ChannelAction.Subscribe, "user:bob"));
    }

    [Fact]
    public async Task A_token_in_a_url_must_be_short_lived()
    {
        var (rsa, pem) = NewRsa("r1");
        var validator = TokenValidatorTests.Create(new AuthOptions { Keys = [new() { Id = "r1", Algorithm = "RS256", PublicKeyPem = pem }] });
        Assert.True((await validator.ValidateAsync(Mint(rsa, SecurityAlgorithms.RsaSha256, lifetime: TimeSpan.FromMinutes(5)), TokenCarrier.Url)).IsValid);
        Assert.Equal(TokenFailure.TooLongLivedForUrl, (await validator.ValidateAsync(Mint(rsa, SecurityAlgorithms.RsaSha256, lifetime: TimeSpan.FromHours(1)), TokenCarrier.Url)).Failure);
        Assert.Equal(TokenFailure.TooLongLivedForUrl, (await validator.ValidateAsync(Mint(rsa, SecurityAlgorithms.RsaSha256, issuedAt: false), TokenCarrier.Url)).Failure);
        Assert.True((await validator.ValidateAsync(Mint(rsa, SecurityAlgorithms.RsaSha256, lifetime: TimeSpan.FromHours(1)), TokenCarrier.Header)).IsValid);
    }
}
