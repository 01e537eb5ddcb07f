using System.Net;
using System.Net.Sockets;

namespace Realtime.Bench.Targets;

/// <summary>HTTP handlers whose connections leave from a chosen loopback address, so the ephemeral port range (per source address) is not the limit.</summary>
internal static class BoundSockets
{
    public static SocketsHttpHandler Handler(IPAddress? source) => new()
    {
        ConnectCallback = async (context, ct) =>
        {
            var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            try
            {
                if (source is not null)
                {
                    socket.Bind(new IPEndPoint(source, 0));
                }

                await socket.ConnectAsync(context.DnsEndPoint, ct);
                return new NetworkStream(socket, ownsSocket: true);
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        },
    };
}
