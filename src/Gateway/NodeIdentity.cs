namespace Realtime.Gateway;

/// <summary>The delivery node this process is: its id names its delivery topic and its routes.</summary>
public sealed record NodeIdentity(string Id);
