using System.ComponentModel.DataAnnotations;
using System.Text;

namespace Realtime.Gateway.Auth;

/// <summary>How client tokens are validated. Section <c>Auth</c>.</summary>
public sealed class AuthOptions : IValidatableObject
{
    public const string Section = "Auth";

    /// <summary>
    /// An HS256 key (UTF-8, at least 32 bytes) for tokens without a <c>kid</c>. Keep it in a secret, never in a file under version control. Optional when
    /// <see cref="Keys"/> or <see cref="JwksUrl"/> provide the keys.
    /// </summary>
    public string? SigningKey { get; set; }

    /// <summary>Keys from configuration, each with its <c>kid</c> and algorithm (key rotation: list the old and the new).</summary>
    public List<SigningKeyOptions> Keys { get; set; } = [];

    /// <summary>
    /// A JSON Web Key Set to take RS256/ES256 public keys from (an identity provider's
    /// <c>jwks_uri</c>). Fetched at start, refreshed every <see cref="JwksRefreshInterval"/>, and
    /// at once when a token names an unknown <c>kid</c> (at most once per <see cref="JwksMinRefreshInterval"/>).
    /// </summary>
    public Uri? JwksUrl { get; set; }

    public TimeSpan JwksRefreshInterval { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>Least time between two fetches of the key set, so unknown-<c>kid</c> tokens cannot make the node hammer the identity provider.</summary>
    public TimeSpan JwksMinRefreshInterval { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>How long one fetch of the key set may take.</summary>
    public TimeSpan JwksTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Required <c>iss</c>; unchecked when empty.</summary>
    public string? Issuer { get; set; }

    /// <summary>Required <c>aud</c>; unchecked when empty.</summary>
    public string? Audience { get; set; }

    /// <summary>Tolerance for clock differences on <c>exp</c> and <c>nbf</c>.</summary>
    public TimeSpan ClockSkew { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Longest total lifetime (<c>exp</c> − <c>iat</c>) of a token passed in a URL
    /// (<c>access_token</c>), where proxies and browsers may record it; longer ones are refused there.
    /// </summary>
    public TimeSpan MaxQueryTokenLifetime { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>
    /// How many validated tokens a node remembers (by their SHA-256), so a reconnect or a repeated
    /// call with the same token skips its parsing, signature check and grants; 0 turns it off.
    /// <c>exp</c>, the carrier's rule and revocations are checked on every use.
    /// </summary>
    [Range(0, 10_000_000)]
    public int ValidatedTokenCacheSize { get; set; } = 10_000;

    /// <summary>
    /// How long before its token expires a WebSocket client is sent <c>auth.expiring</c>; it then
    /// has until <c>exp</c> to send <c>refresh</c> with a new token, or is closed with 4001.
    /// </summary>
    public TimeSpan ExpiryWarning { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>
    /// How long a revocation is kept (in Redis and on every node). Set it longer than any token
    /// lives: a token issued before a revocation that outlives it would be accepted again.
    /// </summary>
    public TimeSpan RevocationRetention { get; set; } = TimeSpan.FromHours(24);

    /// <summary>
    /// Rules per channel namespace (the part of the name before the first <c>:</c>; <c>""</c> for
    /// names without one), e.g. <c>Auth:Namespaces:org:Subscribe = Callback</c>.
    /// </summary>
    public Dictionary<string, NamespaceRules> Namespaces { get; set; } = new(StringComparer.Ordinal);

    /// <summary>The rules of namespaces not listed in <see cref="Namespaces"/>: the token decides.</summary>
    public NamespaceRules DefaultRules { get; set; } = new();

    /// <summary>The application's authorisation callback, for namespaces whose rule is <see cref="ChannelRule.Callback"/>.</summary>
    public AuthorizationCallbackOptions Callback { get; set; } = new();

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        if (!string.IsNullOrEmpty(SigningKey) && Encoding.UTF8.GetByteCount(SigningKey) < 32)
        {
            yield return new ValidationResult("Auth:SigningKey must be at least 32 bytes for HS256.", [nameof(SigningKey)]);
        }

        if (string.IsNullOrEmpty(SigningKey) && Keys.Count == 0 && JwksUrl is null)
        {
            yield return new ValidationResult("Configure Auth:SigningKey, Auth:Keys or Auth:JwksUrl: without a key no token can be valid.", [nameof(SigningKey), nameof(Keys), nameof(JwksUrl)]);
        }

        foreach (var (key, index) in Keys.Select((k, i) => (k, i)))
        {
            if (key.Problem() is { } problem)
            {
                yield return new ValidationResult($"Auth:Keys:{index}: {problem}", [nameof(Keys)]);
            }
        }

        var usesCallback = Namespaces.Values.Append(DefaultRules).Any(r => Enum.GetValues<ChannelAction>().Any(a => r.For(a) == ChannelRule.Callback));
        if (usesCallback && Callback.Url is null)
        {
            yield return new ValidationResult("A namespace rule says Callback but Auth:Callback:Url is not set.", [nameof(Callback)]);
        }

        if (JwksUrl is { } url && url.Scheme != Uri.UriSchemeHttps && !url.IsLoopback)
        {
            yield return new ValidationResult("Auth:JwksUrl must be https (plain http only on loopback).", [nameof(JwksUrl)]);
        }
    }
}

/// <summary>One configured signing key.</summary>
public sealed class SigningKeyOptions
{
    /// <summary>The <c>kid</c> tokens signed with this key carry; empty matches tokens without one.</summary>
    public string? Id { get; set; }

    /// <summary><c>HS256</c>, <c>RS256</c> or <c>ES256</c>.</summary>
    public string Algorithm { get; set; } = "HS256";

    /// <summary>For HS256: the shared secret (UTF-8, at least 32 bytes).</summary>
    public string? Secret { get; set; }

    /// <summary>For RS256 and ES256: the public key, PEM (<c>-----BEGIN PUBLIC KEY-----</c>).</summary>
    public string? PublicKeyPem { get; set; }

    internal string? Problem() => Algorithm switch
    {
        "HS256" when Secret is null || Encoding.UTF8.GetByteCount(Secret) < 32 => "an HS256 key needs a Secret of at least 32 bytes.",
        "RS256" or "ES256" when string.IsNullOrWhiteSpace(PublicKeyPem) => $"an {Algorithm} key needs a PublicKeyPem.",
        "HS256" or "RS256" or "ES256" => null,
        _ => $"Algorithm must be HS256, RS256 or ES256, not '{Algorithm}'.",
    };
}
