namespace Realtime.Bench.Targets;

/// <summary>The systems the generator can measure, by name.</summary>
internal static class Targets
{
    /// <summary>
    /// The target <paramref name="name"/>. Peers (<c>signalr</c>, <c>socketio</c>) must have been
    /// started by <c>bench/peers/peers.sh start &lt;peer&gt; &lt;run-dir&gt;</c>; their pids are
    /// read from <paramref name="peerRunDirectory"/>.
    /// </summary>
    public static IBenchTarget Create(string name, Func<string, string> tokenFor, string peerRunDirectory, bool unaryPublish = false) => name switch
    {
        "realtime" => new RealtimeTarget(tokenFor, unaryPublish),
        "signalr" => new SignalRTarget(peerRunDirectory),
        "socketio" => new SocketIoTarget(peerRunDirectory),
        _ => throw new ArgumentException($"unknown target {name} (realtime, signalr, socketio)"),
    };
}
