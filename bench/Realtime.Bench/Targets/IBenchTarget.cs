using System.Net;

namespace Realtime.Bench.Targets;

/// <summary>
/// A system under test, seen from the load generator: how subscribers connect and receive, how
/// events are published, and which processes make up the system (for CPU and memory). Every
/// target carries the same payload, <c>{"t":&lt;publish time, Unix µs&gt;,"n":&lt;sequence&gt;}</c>,
/// so latency and loss are measured the same way for all of them.
/// </summary>
internal interface IBenchTarget : IAsyncDisposable
{
    /// <summary>Short name used in results and reports: <c>realtime</c>, <c>signalr</c>, <c>socketio</c>.</summary>
    string Name { get; }

    /// <summary>The processes of the system under test (every server instance, Redis, the Kafka host), by name and pid.</summary>
    IReadOnlyList<(string Name, int Pid)> Processes();

    /// <summary>How many server instances the target runs (ours: 2 gateways; each peer: 2 servers).</summary>
    int Instances { get; }

    /// <summary>
    /// Connects subscriber <paramref name="index"/> to server instance <paramref name="instance"/>
    /// (0 ≤ instance &lt; <see cref="Instances"/>), bound to <paramref name="source"/>, and
    /// subscribes it to <paramref name="channel"/>. Completes once the subscription is confirmed.
    /// <paramref name="onEvent"/> gets the event's latency in µs and its <c>n</c>, on the
    /// subscriber's read loop (it must be cheap).
    /// </summary>
    Task<IBenchSubscriber> SubscribeAsync(int index, int instance, IPAddress source, string channel, Action<long, long> onEvent, CancellationToken cancellationToken);

    /// <summary>Publishes one event with the current time and sequence <paramref name="n"/> through the target's native publish API.</summary>
    Task PublishAsync(string channel, long n, CancellationToken cancellationToken);
}

/// <summary>One connected subscriber; disposing it closes its connection.</summary>
internal interface IBenchSubscriber : IAsyncDisposable
{
    /// <summary>Drops the connection abruptly, as a lost network would: no close handshake.</summary>
    void Abort();

    /// <summary>
    /// After <see cref="Abort"/>: connects again to the same instance and subscribes again,
    /// resuming after the last event it received where the target can (ours: <c>since</c>; the
    /// peers have no positions, so what was published meanwhile is lost to them). Completes once
    /// subscribed; deliveries keep going to the same <c>onEvent</c>.
    /// </summary>
    Task ReconnectAsync(CancellationToken cancellationToken);
}
