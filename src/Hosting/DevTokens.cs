using System.Text;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace Realtime.Hosting;

/// <summary>
/// Mints HS256 tokens the way the local stack validates them. For development, tests and
/// operators' tools: production tokens come from the application's identity provider.
/// </summary>
public static class DevTokens
{
    public const string ChannelsClaim = "channels";
    public const string TenantClaim = "tenant";
    public const string RolesClaim = "roles";

    public static string Mint(
        string signingKey,
        string subject,
        IEnumerable<string> channelPatterns,
        TimeSpan lifetime,
        string? issuer = null,
        string? audience = null,
        string? tenant = null,
        DateTime? notBefore = null,
        IEnumerable<string>? roles = null)
    {
        var now = DateTime.UtcNow;
        var claims = new Dictionary<string, object>
        {
            [JwtRegisteredClaimNames.Sub] = subject,
            [ChannelsClaim] = channelPatterns.ToArray(),
        };
        if (!string.IsNullOrEmpty(tenant))
        {
            claims[TenantClaim] = tenant;
        }

        if (roles?.ToArray() is { Length: > 0 } granted)
        {
            claims[RolesClaim] = granted;
        }

        var descriptor = new SecurityTokenDescriptor
        {
            Claims = claims,
            Issuer = issuer,
            Audience = audience,
            IssuedAt = now,
            NotBefore = notBefore ?? now,
            Expires = (notBefore ?? now) + lifetime,
            SigningCredentials = new SigningCredentials(
                new SymmetricSecurityKey(Encoding.UTF8.GetBytes(signingKey)),
                SecurityAlgorithms.HmacSha256),
        };
        return new JsonWebTokenHandler { SetDefaultTimesOnTokenCreation = false }.CreateToken(descriptor);
    }
}
