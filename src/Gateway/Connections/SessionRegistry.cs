using System.Collections.Concurrent;
using Realtime.Gateway.Auth;

namespace Realtime.Gateway.Connections;

/// <summary>Something a node can end from outside: a streaming session or a held long-poll.</summary>
internal interface IDisconnectable
{
    ClientIdentity Identity { get; }

    /// <summary>Ends it; the client reconnects (to any node) and resumes from its position.</summary>
    void Disconnect(int code, string reason);
}

/// <summary>The node's open client connections of every transport, so they can be found by subject.</summary>
internal sealed class SessionRegistry
{
    private readonly ConcurrentDictionary<IDisconnectable, byte> _sessions = new(ReferenceEqualityComparer.Instance);

    public int Count => _sessions.Count;

    public void Add(IDisconnectable session) => _sessions.TryAdd(session, 0);

    public void Remove(IDisconnectable session) => _sessions.TryRemove(session, out _);

    /// <summary>The open sessions, enumerated without a snapshot (a session may come or go meanwhile).</summary>
    public IEnumerable<IDisconnectable> Enumerate()
    {
        foreach (var pair in _sessions)
        {
            yield return pair.Key;
        }
    }

    /// <summary>Bytes queued for sending over all streaming connections (read when metrics are scraped).</summary>
    public long QueuedBytes() => _sessions.Keys.OfType<ClientSession>().Sum(s => s.QueuedBytes);

    /// <summary>The connections of <paramref name="subject"/> on this node, at this moment.</summary>
    public IEnumerable<IDisconnectable> OfSubject(string subject) =>
        _sessions.Keys.Where(s => string.Equals(s.Identity.Subject, subject, StringComparison.Ordinal));

    /// <summary>Ends every connection of <paramref name="subject"/> on this node.</summary>
    /// <returns>How many were ended.</returns>
    public int Disconnect(string subject, int code, string reason)
    {
        var count = 0;
        foreach (var session in _sessions.Keys)
        {
            if (string.Equals(session.Identity.Subject, subject, StringComparison.Ordinal))
            {
                session.Disconnect(code, reason);
                count++;
            }
        }

        return count;
    }
}
