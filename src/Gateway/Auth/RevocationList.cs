using System.Collections.Concurrent;

namespace Realtime.Gateway.Auth;

/// <summary>
/// The revocations this node knows, in memory: subjects whose tokens issued before a moment are
/// refused, and (subject, channel) pairs likewise. Filled at start from Redis and then by the
/// control events every node receives, so checks on the hot path never leave the process.
/// </summary>
/// <remarks>
/// Entries expire with the revocation retention (<see cref="AuthOptions.RevocationRetention"/>,
/// longer than any token lives), which bounds the memory. A token without <c>iat</c> cannot
/// prove it is newer than a revocation, so any revocation of its subject applies to it.
/// </remarks>
public sealed class RevocationList(TimeProvider time)
{
    private readonly ConcurrentDictionary<string, Revocation> _subjects = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<(string Subject, string Channel), Revocation> _channels = new();

    public int Count => _subjects.Count + _channels.Count;

    public void RevokeSubject(string subject, DateTimeOffset at, DateTimeOffset until) =>
        _subjects.AddOrUpdate(subject, new Revocation(at, until), (_, old) => old.At >= at ? old : new Revocation(at, until));

    public void RevokeChannel(string subject, string channel, DateTimeOffset at, DateTimeOffset until) =>
        _channels.AddOrUpdate((subject, channel), new Revocation(at, until), (_, old) => old.At >= at ? old : new Revocation(at, until));

    public bool IsRevoked(ClientIdentity identity) =>
        _subjects.TryGetValue(identity.Subject, out var revocation) && Applies(revocation, identity);

    public bool IsChannelRevoked(ClientIdentity identity, string channel) =>
        !_channels.IsEmpty && _channels.TryGetValue((identity.Subject, channel), out var revocation) && Applies(revocation, identity);

    /// <summary>Drops the entries past their retention.</summary>
    public void Prune()
    {
        var now = time.GetUtcNow();
        foreach (var (key, revocation) in _subjects)
        {
            if (revocation.Until <= now)
            {
                _subjects.TryRemove(new KeyValuePair<string, Revocation>(key, revocation));
            }
        }

        foreach (var (key, revocation) in _channels)
        {
            if (revocation.Until <= now)
            {
                _channels.TryRemove(new KeyValuePair<(string, string), Revocation>(key, revocation));
            }
        }
    }

    private bool Applies(Revocation revocation, ClientIdentity identity) =>
        revocation.Until > time.GetUtcNow() && (identity.IssuedAt is not { } issued || issued <= revocation.At);

    private readonly record struct Revocation(DateTimeOffset At, DateTimeOffset Until);
}
