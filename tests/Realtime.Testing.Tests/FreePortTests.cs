using System.Net;
using System.Net.Sockets;
using Realtime.Testing;

namespace Realtime.Testing.Tests;

public sealed class FreePortTests
{
    [Fact]
    public void Never_hands_out_the_same_port_twice()
    {
        var ports = Enumerable.Range(0, 500).Select(_ => FreePort.Next()).ToList();

        Assert.Equal(ports.Count, ports.Distinct().Count());
        Assert.All(ports, p => Assert.InRange(p, 1, 65535));
    }

    [Fact]
    public void Hands_out_distinct_ports_to_concurrent_callers()
    {
        var ports = new System.Collections.Concurrent.ConcurrentBag<int>();
        Parallel.For(0, 200, _ => ports.Add(FreePort.Next()));

        Assert.Equal(200, ports.Distinct().Count());
    }

    [Fact]
    public void The_port_can_be_bound_on_loopback()
    {
        var port = FreePort.Next();

        using var listener = new TcpListener(IPAddress.Loopback, port);
        listener.Start();
        Assert.Equal(port, ((IPEndPoint)listener.LocalEndpoint).Port);
    }
}
