using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Connections;

namespace Realtime.Gateway.Connections.Upgrade;

/// <summary>
/// The connection a direct WebSocket handshake came on, as the handshake needs it: where it came
/// from, how to write the answer, and the byte stream the WebSocket runs on after a <c>101</c>.
/// </summary>
internal abstract class UpgradeTransport
{
    public abstract string ConnectionId { get; }

    public abstract EndPoint? RemoteEndPoint { get; }

    public abstract EndPoint? LocalEndPoint { get; }

    /// <summary>Cancelled when the client goes away during the handshake, where the transport can tell.</summary>
    public abstract CancellationToken Closed { get; }

    /// <summary>Writes a response head or body.</summary>
    public abstract ValueTask WriteAsync(ReadOnlyMemory<byte> bytes);

    /// <summary>The stream the WebSocket runs on once the <c>101</c> is written.</summary>
    public abstract Stream OpenStream();
}

/// <summary>A Kestrel connection (after TLS, if any): its transport pipes.</summary>
internal sealed class PipeUpgradeTransport(ConnectionContext connection) : UpgradeTransport
{
    public override string ConnectionId => connection.ConnectionId;

    public override EndPoint? RemoteEndPoint => connection.RemoteEndPoint;

    public override EndPoint? LocalEndPoint => connection.LocalEndPoint;

    public override CancellationToken Closed => connection.ConnectionClosed;

    public override async ValueTask WriteAsync(ReadOnlyMemory<byte> bytes) => await connection.Transport.Output.WriteAsync(bytes);

    public override Stream OpenStream() => new DuplexPipeStream(connection.Transport);
}

/// <summary>An accepted socket that never became a Kestrel connection (<see cref="DirectSocketTransport"/>).</summary>
internal sealed class SocketUpgradeTransport(Socket socket, string connectionId) : UpgradeTransport
{
    public override string ConnectionId => connectionId;

    public override EndPoint? RemoteEndPoint => socket.RemoteEndPoint;

    public override EndPoint? LocalEndPoint => socket.LocalEndPoint;

    // A client that leaves mid-handshake fails the next write; the checks before it are short.
    public override CancellationToken Closed => CancellationToken.None;

    public override ValueTask WriteAsync(ReadOnlyMemory<byte> bytes) => SocketStream.SendAllAsync(socket, bytes);

    public override Stream OpenStream() => new SocketStream(socket);
}
