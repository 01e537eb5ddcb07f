using System.Text.Json;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;
using Realtime.Hosting;

namespace Realtime.Gateway.Auth;

/// <summary>Why a token was refused; safe to show to the client and to log (never contains the token).</summary>
public enum TokenFailure
{
    None,
    Missing,
    Malformed,
    Expired,
    NotYetValid,
    InvalidSignature,
    UnknownKey,
    InvalidIssuer,
    InvalidAudience,
    MissingSubject,

    /// <summary>A token in a URL whose total lifetime is longer than <see cref="AuthOptions.MaxQueryTokenLifetime"/> (or unknown: no <c>iat</c>).</summary>
    TooLongLivedForUrl,

    /// <summary>The subject's sessions were revoked after this token was issued.</summary>
    Revoked,
    Invalid,
}

/// <summary>Where a token travelled: a header, or a URL (where proxies and browsers may record it).</summary>
public enum TokenCarrier
{
    Header,
    Url,
}

/// <summary>Outcome of validating a token: an identity, or the reason it was refused.</summary>
public readonly record struct TokenValidation(ClientIdentity? Identity, TokenFailure Failure)
{
    public bool IsValid => Identity is not null;
}

/// <summary>
/// Validates client tokens (JWTs signed HS256, RS256 or ES256) with Microsoft.IdentityModel and
/// turns their claims into a <see cref="ClientIdentity"/>: <c>sub</c>, optional <c>tenant</c>,
/// and the channel grants (<c>channels</c>, <c>permissions</c>; see <see cref="ChannelPermissions"/>).
/// Unsigned tokens (<c>alg: none</c>) and other algorithms are refused.
/// </summary>
public sealed class TokenValidator
{
    public const string PermissionsClaim = "permissions";
    private const int MaxTokenLength = 8 * 1024;
    private static readonly Dictionary<string, ChannelAction> ActionNames = new Dictionary<string, ChannelAction>(StringComparer.Ordinal)
    {
        ["subscribe"] = ChannelAction.Subscribe,
        ["publish"] = ChannelAction.Publish,
        ["history"] = ChannelAction.History,
        ["presence"] = ChannelAction.Presence,
    };

    private readonly JsonWebTokenHandler _handler = new() { MapInboundClaims = false };
    private readonly TokenValidationParameters _parameters;
    private readonly SigningKeys _keys;
    private readonly RevocationList _revocations;
    private readonly TimeSpan _maxUrlLifetime;
    private readonly TimeSpan _clockSkew;
    private readonly TimeProvider _time;
    private readonly ValidatedTokens _validated;

    public TokenValidator(IOptions<AuthOptions> options, SigningKeys keys, RevocationList revocations, TimeProvider? time = null)
    {
        var auth = options.Value;
        _keys = keys;
        _revocations = revocations;
        _maxUrlLifetime = auth.MaxQueryTokenLifetime;
        _clockSkew = auth.ClockSkew;
        _time = time ?? TimeProvider.System;
        _validated = new ValidatedTokens(auth.ValidatedTokenCacheSize);
        _parameters = new TokenValidationParameters
        {
            IssuerSigningKeyResolver = (_, _, kid, _) => keys.Resolve(kid),
            ValidAlgorithms = [SecurityAlgorithms.HmacSha256, SecurityAlgorithms.RsaSha256, SecurityAlgorithms.EcdsaSha256],
            ValidateIssuerSigningKey = true,
            RequireSignedTokens = true,
            RequireExpirationTime = true,
            ValidateLifetime = true,
            ClockSkew = auth.ClockSkew,
            ValidateIssuer = !string.IsNullOrEmpty(auth.Issuer),
            ValidIssuer = auth.Issuer,
            ValidateAudience = !string.IsNullOrEmpty(auth.Audience),
            ValidAudience = auth.Audience,
        };
    }

    public async ValueTask<TokenValidation> ValidateAsync(string? token, TokenCarrier carrier = TokenCarrier.Header)
    {
        if (string.IsNullOrEmpty(token))
        {
            return new(null, TokenFailure.Missing);
        }

        if (token.Length > MaxTokenLength || !_handler.CanReadToken(token))
        {
            return new(null, TokenFailure.Malformed);
        }

        var keysGeneration = _keys.Generation;
        var hash = _validated.Enabled ? ValidatedTokens.Hash(token) : default;
        if (_validated.Find(hash, keysGeneration) is { } known)
        {
            // The same token validated before under the same keys: only what time or a revocation changes is left to check.
            return _time.GetUtcNow() > known.ExpiresAt + _clockSkew ? new(null, TokenFailure.Expired) : Admit(known, carrier);
        }

        var result = await _handler.ValidateTokenAsync(token, _parameters);
        if (!result.IsValid && result.Exception is SecurityTokenSignatureKeyNotFoundException && IsUnknownKid(token) && _keys.CanRefresh)
        {
            // A kid we do not know yet: the identity provider may have rotated its keys.
            await _keys.RefreshAsync(force: true);
            result = await _handler.ValidateTokenAsync(token, _parameters);
        }

        if (!result.IsValid)
        {
            // "No key found" for a token whose kid we do know (or that has none) is a bad signature.
            var failure = Classify(result.Exception);
            return new(null, failure == TokenFailure.UnknownKey && !IsUnknownKid(token) ? TokenFailure.InvalidSignature : failure);
        }

        var jwt = (JsonWebToken)result.SecurityToken;
        if (!jwt.TryGetPayloadValue<string>(JwtRegisteredClaimNames.Sub, out var subject) || string.IsNullOrWhiteSpace(subject))
        {
            return new(null, TokenFailure.MissingSubject);
        }

        DateTimeOffset? issuedAt = jwt.TryGetPayloadValue<long>(JwtRegisteredClaimNames.Iat, out _) ? new DateTimeOffset(jwt.IssuedAt, TimeSpan.Zero) : null;
        var expiresAt = new DateTimeOffset(jwt.ValidTo, TimeSpan.Zero);
        jwt.TryGetPayloadValue<string>(DevTokens.TenantClaim, out var tenant);
        var permissions = ChannelPermissions.From(ReadPatterns(jwt, DevTokens.ChannelsClaim), ReadPermissions(jwt), subject, tenant);
        var identity = new ClientIdentity(subject, tenant, permissions, expiresAt, issuedAt, ReadPatterns(jwt, DevTokens.RolesClaim));
        _validated.Add(hash, keysGeneration, identity);
        return Admit(identity, carrier);
    }

    /// <summary>The checks a valid token meets again on every use: its carrier's rule and the revocation list.</summary>
    private TokenValidation Admit(ClientIdentity identity, TokenCarrier carrier)
    {
        if (carrier == TokenCarrier.Url && (identity.IssuedAt is null || identity.ExpiresAt - identity.IssuedAt.Value > _maxUrlLifetime))
        {
            return new(null, TokenFailure.TooLongLivedForUrl);
        }

        return _revocations.IsRevoked(identity) ? new(null, TokenFailure.Revoked) : new(identity, TokenFailure.None);
    }

    private bool IsUnknownKid(string token)
    {
        var kid = _handler.ReadJsonWebToken(token).Kid;
        return !string.IsNullOrEmpty(kid) && !_keys.Resolve(kid).Any();
    }

    private static string[] ReadPatterns(JsonWebToken jwt, string claim)
    {
        if (jwt.TryGetPayloadValue<string[]>(claim, out var many) && many is not null)
        {
            return many;
        }

        return jwt.TryGetPayloadValue<string>(claim, out var one) && one is not null ? [one] : [];
    }

    private static Dictionary<ChannelAction, IReadOnlyList<string>> ReadPermissions(JsonWebToken jwt)
    {
        var permissions = new Dictionary<ChannelAction, IReadOnlyList<string>>();
        if (!jwt.TryGetPayloadValue<JsonElement>(PermissionsClaim, out var element) || element.ValueKind != JsonValueKind.Object)
        {
            return permissions;
        }

        foreach (var property in element.EnumerateObject())
        {
            if (!ActionNames.TryGetValue(property.Name, out var action))
            {
                continue;
            }

            permissions[action] = property.Value.ValueKind switch
            {
                JsonValueKind.Array => [.. property.Value.EnumerateArray().Where(v => v.ValueKind == JsonValueKind.String).Select(v => v.GetString()!)],
                JsonValueKind.String => [property.Value.GetString()!],
                _ => [],
            };
        }

        return permissions;
    }

    private static TokenFailure Classify(Exception? exception) => exception switch
    {
        SecurityTokenExpiredException => TokenFailure.Expired,
        SecurityTokenNotYetValidException => TokenFailure.NotYetValid,
        SecurityTokenInvalidIssuerException => TokenFailure.InvalidIssuer,
        SecurityTokenInvalidAudienceException => TokenFailure.InvalidAudience,
        SecurityTokenSignatureKeyNotFoundException => TokenFailure.UnknownKey,
        SecurityTokenInvalidSignatureException or SecurityTokenInvalidAlgorithmException => TokenFailure.InvalidSignature,
        SecurityTokenMalformedException or ArgumentException or JsonException => TokenFailure.Malformed,
        _ => TokenFailure.Invalid,
    };
}
