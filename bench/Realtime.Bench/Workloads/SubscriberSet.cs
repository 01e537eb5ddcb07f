using Realtime.Bench.Targets;

namespace Realtime.Bench.Workloads;

/// <summary>
/// The subscribers of one run: client i on server instance i mod <see cref="IBenchTarget.Instances"/>,
/// from its own source address, each delivery recorded as latency and in the ledger. Disposing
/// closes every client connected so far, also after a failure half way.
/// </summary>
internal sealed class SubscriberSet : IAsyncDisposable
{
    private readonly List<IBenchSubscriber> _clients = [];

    public IReadOnlyList<IBenchSubscriber> Clients => _clients;

    /// <summary>
    /// Connects <paramref name="count"/> clients, client i to <paramref name="channelOf"/>(i). Events are
    /// spread round robin over <paramref name="channels"/> channels, so event n is a channel's
    /// (n / channels)-th: that is its place in the client's ledger.
    /// </summary>
    public async Task ConnectAsync(
        IBenchTarget target,
        int count,
        Func<int, string> channelOf,
        int channels,
        Measurement measurement,
        DeliveryLedger ledger,
        CancellationToken cancellationToken)
    {
        for (var i = 0; i < count; i++)
        {
            var index = i;
            _clients.Add(await target.SubscribeAsync(i, i % target.Instances, SourceAddresses.For(i), channelOf(i), (micros, n) =>
            {
                measurement.RecordMicros(micros);
                ledger.Record(index, n / channels);
            }, cancellationToken));
        }
    }

    public async ValueTask DisposeAsync() => await Task.WhenAll(_clients.Select(c => c.DisposeAsync().AsTask()));
}
