namespace Realtime.Gateway.Auth;

/// <summary>Who is on the other end of a connection or call, as the validated token says.</summary>
/// <param name="Subject">The token's <c>sub</c>: the user (or service) id.</param>
/// <param name="Tenant">The optional <c>tenant</c> claim.</param>
/// <param name="Permissions">The channel grants of the token, per action.</param>
/// <param name="ExpiresAt">The token's <c>exp</c>.</param>
/// <param name="IssuedAt">The token's <c>iat</c>, when it has one (revocations apply to tokens issued before them).</param>
/// <param name="Roles">The token's <c>roles</c> claim; <see cref="AdminRole"/> allows the session-control API.</param>
public sealed record ClientIdentity(
    string Subject,
    string? Tenant,
    ChannelPermissions Permissions,
    DateTimeOffset ExpiresAt,
    DateTimeOffset? IssuedAt = null,
    IReadOnlyList<string>? Roles = null)
{
    public const string AdminRole = "realtime.admin";

    public bool IsAdmin => Roles?.Contains(AdminRole, StringComparer.Ordinal) == true;
}
