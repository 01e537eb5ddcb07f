using System.Text;
using Microsoft.Extensions.Options;
using Realtime.Gateway.Auth;
using Realtime.Hosting;

namespace Realtime.Gateway.Tests.Auth;

public sealed class TokenValidatorTests
{
    private const string Key = "0123456789abcdef0123456789abcdef-test-key";
    private const string Issuer = "realtime-test";
    private const string Audience = "realtime";

    private static readonly TokenValidator Validator = Create(new AuthOptions
    {
        SigningKey = Key,
        Issuer = Issuer,
        Audience = Audience,
        ClockSkew = TimeSpan.FromSeconds(5),
    });

    internal static TokenValidator Create(AuthOptions options)
    {
        var wrapped = Options.Create(options);
        return new TokenValidator(wrapped, new SigningKeys(wrapped, TimeProvider.System, Microsoft.Extensions.Logging.Abstractions.NullLogger<SigningKeys>.Instance), new RevocationList(TimeProvider.System));
    }

    private static string Mint(string subject = "alice", string[]? channels = null, TimeSpan? lifetime = null, string? issuer = Issuer, string? audience = Audience, string key = Key, DateTime? notBefore = null) =>
        DevTokens.Mint(key, subject, channels ?? ["room:*"], lifetime ?? TimeSpan.FromMinutes(5), issuer, audience, tenant: "acme", notBefore: notBefore);

    [Fact]
    public async Task A_valid_token_yields_subject_tenant_and_channel_patterns()
    {
        var result = await Validator.ValidateAsync(Mint(channels: ["room:*", "user:alice"]));
        Assert.True(result.IsValid);
        Assert.Equal("alice", result.Identity!.Subject);
        Assert.Equal("acme", result.Identity.Tenant);
        Assert.True(result.Identity.Permissions.Allows(ChannelAction.Subscribe, "room:7"));
        Assert.True(result.Identity.Permissions.Allows(ChannelAction.Subscribe, "user:alice"));
        Assert.False(result.Identity.Permissions.Allows(ChannelAction.Subscribe, "user:bob"));
    }

    [Fact]
    public async Task Refusals_say_why()
    {
        Assert.Equal(TokenFailure.Missing, (await Validator.ValidateAsync(null)).Failure);
        Assert.Equal(TokenFailure.Missing, (await Validator.ValidateAsync(string.Empty)).Failure);
        Assert.Equal(TokenFailure.Malformed, (await Validator.ValidateAsync("abc")).Failure);
        Assert.Equal(TokenFailure.Malformed, (await Validator.ValidateAsync(new string('a', 20_000))).Failure);
        Assert.Equal(TokenFailure.Expired, (await Validator.ValidateAsync(Mint(notBefore: DateTime.UtcNow.AddHours(-2), lifetime: TimeSpan.FromMinutes(1)))).Failure);
        Assert.Equal(TokenFailure.NotYetValid, (await Validator.ValidateAsync(Mint(notBefore: DateTime.UtcNow.AddHours(1)))).Failure);
        Assert.Equal(TokenFailure.InvalidIssuer, (await Validator.ValidateAsync(Mint(issuer: "evil"))).Failure);
        Assert.Equal(TokenFailure.InvalidAudience, (await Validator.ValidateAsync(Mint(audience: "other"))).Failure);
        Assert.Equal(TokenFailure.InvalidSignature, (await Validator.ValidateAsync(Mint(key: "another-key-that-is-long-enough-0123456789"))).Failure);
    }

    [Fact]
    public async Task An_unsigned_alg_none_token_is_refused()
    {
        static string B64(string s) => Convert.ToBase64String(Encoding.UTF8.GetBytes(s)).TrimEnd('=').Replace('+', '-').Replace('/', '_');
        var exp = DateTimeOffset.UtcNow.AddMinutes(5).ToUnixTimeSeconds();
        var unsigned = $"{B64("{\"alg\":\"none\",\"typ\":\"JWT\"}")}.{B64($"{{\"sub\":\"eve\",\"channels\":[\"*\"],\"exp\":{exp},\"iss\":\"{Issuer}\",\"aud\":\"{Audience}\"}}")}.";
        var result = await Validator.ValidateAsync(unsigned);
        Assert.False(result.IsValid);
    }

    [Fact]
    public async Task A_token_without_channels_grants_nothing()
    {
        var result = await Validator.ValidateAsync(Mint(channels: []));
        Assert.True(result.IsValid);
        Assert.False(result.Identity!.Permissions.Allows(ChannelAction.Subscribe, "room:1"));
    }
}
