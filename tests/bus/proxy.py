from hub.ports.proxy import TcpProxy as TcpProxy
