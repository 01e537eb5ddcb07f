using System.Collections.Concurrent;
using Realtime.Gateway.Connections;
using Realtime.Gateway.Protocol;
using Realtime.Gateway.Replay;

namespace Realtime.Gateway.Routing;

/// <summary>Something that can receive a channel's events: a client connection, whatever its transport.</summary>
internal interface IFrameSink
{
    /// <summary>
    /// Queues an event of a subscribed channel, in the sink's wire format. The event's seq and
    /// epoch let the sink drop duplicates and keep its own cursor. Never blocks; a sink that
    /// cannot keep up handles that itself (resync or close).
    /// </summary>
    void DeliverEvent(string channel, OutgoingEvent outgoing);

    /// <summary>
    /// Like <see cref="DeliverEvent"/> but leaves the write to the caller: true when a frame was
    /// queued and <see cref="StartWrites"/> must follow (on any thread). A sink that does not
    /// write through a queue delivers here and returns false.
    /// </summary>
    bool QueueEvent(string channel, OutgoingEvent outgoing)
    {
        DeliverEvent(channel, outgoing);
        return false;
    }

    /// <summary>Writes what <see cref="QueueEvent"/> queued; returns at once when nothing waits or a write is under way.</summary>
    void StartWrites()
    {
    }

    /// <summary>
    /// The channel is at <paramref name="head"/>: a sink that is behind it in the same epoch fetches
    /// what it missed. Used after the node's routes were lost and registered again.
    /// </summary>
    void CatchUp(string channel, ChannelPosition head);
}

/// <summary>
/// The one seam between connections and the backbone. Connections subscribe and unsubscribe
/// here; the delivery consumer dispatches here. The hub keeps the node's rows of the routing
/// table in step with its local subscribers: the first local subscriber of a channel adds the
/// node to the channel's route set before the subscribe completes, the last one leaving
/// removes it.
/// </summary>
/// <remarks>
/// Dispatch reads the channel's subscriber array (<see cref="ChannelSubscribers"/>), so delivering
/// an event takes no lock once the array is built. Joining or leaving a channel whose route is in
/// place takes the channel's lock for a set change; only adding the route waits on Redis, and the
/// channel's other new subscribers wait for it. Channels never wait for each other.
/// </remarks>
internal sealed class ChannelHub(RouteRegistry routes)
{
    private readonly ConcurrentDictionary<string, ChannelEntry> _channels = new(StringComparer.Ordinal);

    /// <summary>Adds a subscriber; completes once the node's route for the channel is in Redis.</summary>
    /// <returns>False when the sink was already subscribed.</returns>
    public async Task<bool> SubscribeAsync(string channel, IFrameSink sink)
    {
        while (true)
        {
            var entry = _channels.GetOrAdd(channel, static _ => new ChannelEntry());

            // With the route in place a subscribe is a set insert: subscribers of one channel do
            // not queue behind each other (in a reconnect storm each hand-off of an async gate
            // waits its turn in a thread pool full of handshakes).
            lock (entry.Sync)
            {
                if (entry.Removed)
                {
                    continue;
                }

                if (entry.RouteRegistered)
                {
                    return entry.Subscribers.Add(sink);
                }
            }

            // The channel's first subscriber here: one route add, the others wait for it.
            await entry.Gate.WaitAsync();
            try
            {
                lock (entry.Sync)
                {
                    if (entry.Removed)
                    {
                        continue;
                    }

                    if (entry.RouteRegistered)
                    {
                        return entry.Subscribers.Add(sink);
                    }
                }

                // Throws when Redis is unreachable; the subscribe fails and nothing changed.
                await routes.AddAsync(channel);
                lock (entry.Sync)
                {
                    entry.RouteRegistered = true;
                    return entry.Subscribers.Add(sink);
                }
            }
            finally
            {
                lock (entry.Sync)
                {
                    if (!entry.RouteRegistered && !entry.Removed)
                    {
                        // Route registration failed for the first subscriber: leave no empty entry.
                        entry.Removed = true;
                        _channels.TryRemove(new KeyValuePair<string, ChannelEntry>(channel, entry));
                    }
                }

                entry.Gate.Release();
            }
        }
    }

    /// <summary>Removes a subscriber; the last one leaving removes the node's route.</summary>
    /// <returns>False when the sink was not subscribed.</returns>
    public async Task<bool> UnsubscribeAsync(string channel, IFrameSink sink)
    {
        if (!_channels.TryGetValue(channel, out var entry))
        {
            return false;
        }

        Task? removal = null;
        lock (entry.Sync)
        {
            if (entry.Removed || !entry.Subscribers.Remove(sink))
            {
                return false;
            }

            if (entry.Subscribers.Count > 0)
            {
                return true;
            }

            // The last one. The route's removal is sent before the entry leaves the table, so a
            // later subscriber's route add (on a new entry) reaches Redis after it, not before.
            entry.Removed = true;
            if (entry.RouteRegistered)
            {
                entry.RouteRegistered = false;
                removal = routes.RemoveAsync(channel);
            }

            _channels.TryRemove(new KeyValuePair<string, ChannelEntry>(channel, entry));
        }

        if (removal is not null)
        {
            // Best effort: if Redis is down the route stays until it is cleared at the node's next
            // start; the fanout then writes a few events nobody reads.
            await removal;
        }

        return true;
    }

    /// <summary>Offers an event to every local subscriber of the channel.</summary>
    /// <returns>How many subscribers it was offered to.</returns>
    /// <param name="channel">The event's channel.</param>
    /// <param name="outgoing">The event, encoded once for every subscriber.</param>
    /// <param name="batch">Where writes wait for the rest of their node-topic batch (<see cref="FanoutWrites.WriteBatch"/>); null: written now.</param>
    public int Dispatch(string channel, OutgoingEvent outgoing, FanoutWrites.WriteBatch? batch = null)
    {
        if (!_channels.TryGetValue(channel, out var entry))
        {
            return 0;
        }

        var subscribers = entry.Subscribers.Snapshot();
        FanoutWrites.Deliver(subscribers, channel, outgoing, batch);
        return subscribers.Length;
    }

    /// <summary>
    /// After the node's routes were missing for a while (Redis lost them), lets every subscriber of
    /// these channels fetch the events sequenced meanwhile, which were not routed here.
    /// </summary>
    public async Task CatchUpAsync(IReadOnlyCollection<string> channels, ChannelHistory history)
    {
        foreach (var channel in channels)
        {
            if (!_channels.TryGetValue(channel, out var entry) || entry.Subscribers.Count == 0)
            {
                continue;
            }

            var head = await history.HeadAsync(channel);
            foreach (var sink in entry.Subscribers.Snapshot())
            {
                sink.CatchUp(channel, head);
            }
        }
    }

    /// <summary>The channels this node must have routes for (to re-register after Redis lost them).</summary>
    public IReadOnlyCollection<string> RoutedChannels() =>
        [.. _channels.Where(c => c.Value.RouteRegistered).Select(c => c.Key)];

    private sealed class ChannelEntry
    {
        // Guards the flags and the subscriber count's transitions to and from zero; never held across an await.
        public Lock Sync { get; } = new();

        // Held by the channel's first subscriber while its route is added, and by those that wait for it.
        public SemaphoreSlim Gate { get; } = new(1, 1);

        public ChannelSubscribers Subscribers { get; } = new();

        public bool RouteRegistered;

        public bool Removed;
    }
}
