using System.Text;
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
    InvalidIssuer,
    InvalidAudience,
    MissingSubject,
    Invalid,
}

/// <summary>Outcome of validating a token: an identity, or the reason it was refused.</summary>
public readonly record struct TokenValidation(ClientIdentity? Identity, TokenFailure Failure)
{
    public bool IsValid => Identity is not null;
}

/// <summary>
/// Validates client tokens (HS256 JWTs) with Microsoft.IdentityModel and turns their claims
/// into a <see cref="ClientIdentity"/>: <c>sub</c>, optional <c>tenant</c>, and the
/// <c>channels</c> claim (an array of glob patterns, or one pattern as a string).
/// </summary>
public sealed class TokenValidator
{
    private const int MaxTokenLength = 8 * 1024;
    private readonly JsonWebTokenHandler _handler = new() { MapInboundClaims = false };
    private readonly TokenValidationParameters _parameters;

    public TokenValidator(IOptions<AuthOptions> options)
    {
        var auth = options.Value;
        _parameters = new TokenValidationParameters
        {
            IssuerSigningKey = new SymmetricSecurityKey(Encoding.UTF8.GetBytes(auth.SigningKey)),
            ValidAlgorithms = [SecurityAlgorithms.HmacSha256],
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

    public async ValueTask<TokenValidation> ValidateAsync(string? token)
    {
        if (string.IsNullOrEmpty(token))
        {
            return new(null, TokenFailure.Missing);
        }

        if (token.Length > MaxTokenLength || !_handler.CanReadToken(token))
        {
            return new(null, TokenFailure.Malformed);
        }

        var result = await _handler.ValidateTokenAsync(token, _parameters);
        if (!result.IsValid)
        {
            return new(null, Classify(result.Exception));
        }

        var jwt = (JsonWebToken)result.SecurityToken;
        if (!jwt.TryGetPayloadValue<string>(JwtRegisteredClaimNames.Sub, out var subject) || string.IsNullOrWhiteSpace(subject))
        {
            return new(null, TokenFailure.MissingSubject);
        }

        jwt.TryGetPayloadValue<string>(DevTokens.TenantClaim, out var tenant);
        return new(new ClientIdentity(subject, tenant, ReadChannels(jwt), new DateTimeOffset(jwt.ValidTo, TimeSpan.Zero)), TokenFailure.None);
    }

    private static ChannelPatterns ReadChannels(JsonWebToken jwt)
    {
        if (jwt.TryGetPayloadValue<string[]>(DevTokens.ChannelsClaim, out var many) && many is not null)
        {
            return new ChannelPatterns(many);
        }

        if (jwt.TryGetPayloadValue<string>(DevTokens.ChannelsClaim, out var one) && one is not null)
        {
            return new ChannelPatterns([one]);
        }

        return ChannelPatterns.None;
    }

    private static TokenFailure Classify(Exception? exception) => exception switch
    {
        SecurityTokenExpiredException => TokenFailure.Expired,
        SecurityTokenNotYetValidException => TokenFailure.NotYetValid,
        SecurityTokenInvalidIssuerException => TokenFailure.InvalidIssuer,
        SecurityTokenInvalidAudienceException => TokenFailure.InvalidAudience,
        SecurityTokenSignatureKeyNotFoundException or SecurityTokenInvalidSignatureException or SecurityTokenInvalidAlgorithmException => TokenFailure.InvalidSignature,
        SecurityTokenMalformedException or ArgumentException or JsonException => TokenFailure.Malformed,
        _ => TokenFailure.Invalid,
    };
}
