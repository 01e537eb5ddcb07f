namespace Realtime.Gateway.Auth;

/// <summary>Who is on the other end of a connection or call, as the validated token says.</summary>
public sealed record ClientIdentity(string Subject, string? Tenant, ChannelPatterns Channels, DateTimeOffset ExpiresAt);
