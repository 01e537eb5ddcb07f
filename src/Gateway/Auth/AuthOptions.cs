using System.ComponentModel.DataAnnotations;
using System.Text;

namespace Realtime.Gateway.Auth;

/// <summary>How client tokens are validated. Section <c>Auth</c>.</summary>
public sealed class AuthOptions : IValidatableObject
{
    public const string Section = "Auth";

    /// <summary>HS256 key (UTF-8, at least 32 bytes). Keep it in a secret, never in a file under version control.</summary>
    [Required]
    public string SigningKey { get; set; } = string.Empty;

    /// <summary>Required <c>iss</c>; unchecked when empty.</summary>
    public string? Issuer { get; set; }

    /// <summary>Required <c>aud</c>; unchecked when empty.</summary>
    public string? Audience { get; set; }

    /// <summary>Tolerance for clock differences on <c>exp</c> and <c>nbf</c>.</summary>
    public TimeSpan ClockSkew { get; set; } = TimeSpan.FromSeconds(30);

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        if (Encoding.UTF8.GetByteCount(SigningKey) < 32)
        {
            yield return new ValidationResult("Auth:SigningKey must be at least 32 bytes for HS256.", [nameof(SigningKey)]);
        }
    }
}
